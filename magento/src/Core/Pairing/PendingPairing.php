<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

use DateTimeImmutable;

/** A pairing code handed out by the gateway and not yet entered, expired or consumed. */
final class PendingPairing
{
    public function __construct(
        public readonly string $pairingId,
        public readonly string $code,
        public readonly string $pollSecret,
        public readonly DateTimeImmutable $expiresAt,
        public readonly int $pollInterval,
        public readonly string $gatewayUrl,
    ) {
    }

    /** The code cannot be used any more; checked locally so a dead code is not polled for. */
    public function isExpired(DateTimeImmutable $now): bool
    {
        return $now >= $this->expiresAt;
    }

    /** @return array<string, mixed> everything except the poll secret, which is stored encrypted */
    public function toArray(): array
    {
        return [
            'pairing_id' => $this->pairingId,
            'code' => $this->code,
            'expires_at' => $this->expiresAt->format(DATE_ATOM),
            'poll_interval_seconds' => $this->pollInterval,
            'gateway_url' => $this->gatewayUrl,
        ];
    }

    /** @param array<string, mixed> $data as written by toArray() */
    public static function fromArray(array $data, string $pollSecret): ?self
    {
        $id = $data['pairing_id'] ?? null;
        $code = $data['code'] ?? null;
        $gateway = $data['gateway_url'] ?? null;
        if (!is_string($id) || !is_string($code) || !is_string($gateway) || $id === '' || $pollSecret === '') {
            return null;
        }
        try {
            $expires = new DateTimeImmutable((string) ($data['expires_at'] ?? ''));
        } catch (\Exception) {
            return null;
        }
        return new self($id, $code, $pollSecret, $expires, (int) ($data['poll_interval_seconds'] ?? 5), $gateway);
    }
}
