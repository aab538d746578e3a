<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use DateTimeImmutable;
use InvalidArgumentException;

/**
 * Exponential backoff: 1, 2, 4, 8 … minutes, capped at six hours; dead after $maxAttempts failed
 * attempts. With the defaults (12 attempts) a row is retried for about 20 hours, inside the
 * 24-hour duplicate window of the MAGENTO_EVENTS stream.
 */
final class RetryPolicy
{
    public function __construct(
        private int $maxAttempts = 12,
        private int $baseDelaySeconds = 60,
        private int $maxDelaySeconds = 21600,
    ) {
        if ($maxAttempts < 1 || $baseDelaySeconds < 1 || $maxDelaySeconds < $baseDelaySeconds) {
            throw new InvalidArgumentException('invalid retry policy');
        }
    }

    public function maxAttempts(): int
    {
        return $this->maxAttempts;
    }

    /** Delay after the $attempts-th failure (1-based). */
    public function delaySeconds(int $attempts): int
    {
        $exponent = max(0, min($attempts - 1, 30));
        return (int) min($this->maxDelaySeconds, $this->baseDelaySeconds * (2 ** $exponent));
    }

    /** Applies one failed attempt to the record: retry with backoff, or dead. */
    public function fail(OutboxRecord $record, string $error, DateTimeImmutable $now, bool $permanent = false): void
    {
        $record->attempts++;
        $record->lastError = mb_substr($error, 0, 2000);
        if ($permanent || $record->attempts >= $this->maxAttempts) {
            $record->status = OutboxStatus::Dead;
            $record->nextAttemptAt = $now;
            return;
        }
        $record->status = OutboxStatus::Retry;
        $record->nextAttemptAt = $now->modify('+' . $this->delaySeconds($record->attempts) . ' seconds');
    }
}
