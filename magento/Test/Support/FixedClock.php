<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use DateTimeImmutable;
use DateTimeZone;
use Ledger\SageSync\Core\Clock;

final class FixedClock implements Clock
{
    public DateTimeImmutable $now;

    public function __construct(string $now = '2025-04-02 10:14:12')
    {
        $this->now = new DateTimeImmutable($now, new DateTimeZone('UTC'));
    }

    public function now(): DateTimeImmutable
    {
        return $this->now;
    }

    public function advance(int $seconds): void
    {
        $this->now = $this->now->modify('+' . $seconds . ' seconds');
    }
}
