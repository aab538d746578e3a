<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

use DateTimeImmutable;

/**
 * What pairing delivers: this store's own Ledger key (key id + secret) and where to use it.
 * NATS: user = key id, password = secret, reply inboxes under the inbox prefix. HTTPS (events,
 * status feed, revoke): Authorization: Bearer <secret>. Nothing of Sage is ever held here.
 */
final class Credentials
{
    /** @param list<string> $natsUrls */
    public function __construct(
        public readonly string $merchantId,
        public readonly string $keyId,
        public readonly string $secret,
        public readonly array $natsUrls,
        public readonly string $inboxPrefix,
        public readonly string $gatewayUrl,
        public readonly ?DateTimeImmutable $pairedAt = null,
    ) {
    }

    /** @return array<string, mixed> everything except the secret, which is stored encrypted */
    public function toArray(): array
    {
        return [
            'merchant_id' => $this->merchantId,
            'key_id' => $this->keyId,
            'nats_urls' => $this->natsUrls,
            'inbox_prefix' => $this->inboxPrefix,
            'gateway_url' => $this->gatewayUrl,
            'paired_at' => $this->pairedAt?->format(DATE_ATOM),
        ];
    }

    /** @param array<string, mixed> $data as written by toArray() */
    public static function fromArray(array $data, string $secret): ?self
    {
        $merchant = $data['merchant_id'] ?? null;
        $keyId = $data['key_id'] ?? null;
        if (!is_string($merchant) || !is_string($keyId) || $merchant === '' || $keyId === '' || $secret === '') {
            return null;
        }
        $urls = array_values(array_filter((array) ($data['nats_urls'] ?? []), 'is_string'));
        $pairedAt = null;
        if (is_string($data['paired_at'] ?? null)) {
            try {
                $pairedAt = new DateTimeImmutable($data['paired_at']);
            } catch (\Exception) {
                $pairedAt = null;
            }
        }
        return new self(
            $merchant,
            $keyId,
            $secret,
            $urls,
            (string) ($data['inbox_prefix'] ?? '_INBOX'),
            (string) ($data['gateway_url'] ?? ''),
            $pairedAt
        );
    }

    /** The first NATS URL; empty when the gateway gave none (HTTPS only). */
    public function natsUrl(): string
    {
        return $this->natsUrls[0] ?? '';
    }
}
