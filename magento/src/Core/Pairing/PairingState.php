<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

use DateTimeImmutable;

/** A snapshot of the pairing for screens, the CLI and JSON answers. */
final class PairingState
{
    public const NOT_PAIRED = 'not_paired';
    public const PENDING = 'pending';
    public const PAIRED = 'paired';

    /**
     * @param string|null $warning a passing problem (gateway unreachable); the pairing goes on
     */
    public function __construct(
        public readonly string $state,
        public readonly ?PendingPairing $pending = null,
        public readonly ?Credentials $credentials = null,
        public readonly ?string $message = null,
        public readonly ?string $warning = null,
    ) {
    }

    /** Paired wins over a stale pending code; an expired code counts as not paired. */
    public static function of(PairingStore $store, DateTimeImmutable $now, ?string $warning = null): self
    {
        $credentials = $store->credentials();
        if ($credentials !== null) {
            return new self(self::PAIRED, null, $credentials, $store->message(), $warning);
        }
        $pending = $store->pending();
        if ($pending !== null && !$pending->isExpired($now)) {
            return new self(self::PENDING, $pending, null, $store->message(), $warning);
        }
        return new self(self::NOT_PAIRED, null, null, $store->message(), $warning);
    }

    /** One sentence for people (admin page, CLI); no secrets. */
    public function describe(): string
    {
        if ($this->credentials !== null) {
            $since = $this->credentials->pairedAt?->format('Y-m-d H:i') ?? null;
            return 'Paired with Ledger as merchant ' . $this->credentials->merchantId . ' with key '
                . $this->credentials->keyId . ($since !== null ? ' (since ' . $since . ' UTC)' : '') . '.';
        }
        if ($this->pending !== null) {
            return 'Pairing code ' . $this->pending->code . ' is valid until '
                . $this->pending->expiresAt->format('Y-m-d H:i') . ' UTC, once. Enter it on Ledger\'s side; '
                . 'the store collects its key within a minute.';
        }
        return 'Not paired with Ledger.';
    }

    /** @return array<string, mixed> without any secret */
    public function toArray(): array
    {
        return [
            'state' => $this->state,
            'code' => $this->pending?->code,
            'expires_at' => $this->pending?->expiresAt->format(DATE_ATOM),
            'poll_interval_seconds' => $this->pending?->pollInterval,
            'merchant_id' => $this->credentials?->merchantId,
            'key_id' => $this->credentials?->keyId,
            'description' => $this->describe(),
            'message' => $this->message,
            'warning' => $this->warning,
        ];
    }
}
