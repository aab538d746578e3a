<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model;

use Ledger\SageSync\Core\Nats\NatsOptions;
use Magento\Framework\App\Config\ScopeConfigInterface;
use Magento\Framework\Encryption\EncryptorInterface;

/** The module's settings (Stores > Configuration > Ledger > Sage Sync), global scope only. */
class Config
{
    public const TRANSPORT_NATS = 'nats';
    public const TRANSPORT_HTTPS = 'https';
    public const TRANSPORT_NATS_HTTPS = 'nats_https';

    private const PREFIX = 'ledger_sage_sync/';

    public function __construct(
        private ScopeConfigInterface $scopeConfig,
        private EncryptorInterface $encryptor,
    ) {
    }

    public function isEnabled(): bool
    {
        return $this->scopeConfig->isSetFlag(self::PREFIX . 'general/enabled');
    }

    public function merchantId(): string
    {
        return trim((string) $this->value('general/merchant_id'));
    }

    public function transport(): string
    {
        $transport = (string) $this->value('general/transport');
        $known = [self::TRANSPORT_NATS, self::TRANSPORT_HTTPS, self::TRANSPORT_NATS_HTTPS];
        return in_array($transport, $known, true) ? $transport : self::TRANSPORT_NATS_HTTPS;
    }

    public function natsUrl(): string
    {
        return trim((string) $this->value('nats/url'));
    }

    /** @param bool $quick short timeouts for the publish right after an admin save */
    public function natsOptions(bool $quick = false): NatsOptions
    {
        $timeout = $quick ? 2.0 : (float) max(1, min(60, (int) $this->value('nats/timeout') ?: 5));
        return NatsOptions::fromUrl(
            $this->natsUrl(),
            $this->blank($this->value('nats/user')),
            $this->secret('nats/password'),
            $this->secret('nats/token'),
            $timeout,
            trim((string) $this->value('nats/inbox_prefix')) ?: '_INBOX',
            $this->blank($this->value('nats/ca_file')),
        );
    }

    public function httpsUrl(): string
    {
        return trim((string) $this->value('https/url'));
    }

    public function httpsKey(): string
    {
        return (string) $this->secret('https/ingest_key');
    }

    public function batchSize(): int
    {
        return max(1, min(5000, (int) $this->value('relay/batch_size') ?: 200));
    }

    public function maxAttempts(): int
    {
        return max(1, min(50, (int) $this->value('relay/max_attempts') ?: 12));
    }

    public function flushAfterCommit(): bool
    {
        return $this->scopeConfig->isSetFlag(self::PREFIX . 'relay/flush_after_commit');
    }

    /** What is missing before anything can be published; empty when ready. */
    public function problems(): array
    {
        $problems = [];
        if (!$this->isEnabled()) {
            $problems[] = 'Recording events is switched off.';
        }
        if ($this->merchantId() === '') {
            $problems[] = 'The merchant id is not set.';
        }
        $transport = $this->transport();
        if ($transport !== self::TRANSPORT_HTTPS && $this->natsUrl() === '') {
            $problems[] = 'The NATS URL is not set.';
        }
        if ($transport === self::TRANSPORT_HTTPS && ($this->httpsUrl() === '' || $this->httpsKey() === '')) {
            $problems[] = 'The HTTPS gateway URL or ingest key is not set.';
        }
        return $problems;
    }

    private function value(string $path): mixed
    {
        return $this->scopeConfig->getValue(self::PREFIX . $path);
    }

    private function secret(string $path): ?string
    {
        $stored = $this->blank($this->value($path));
        return $stored === null ? null : $this->blank($this->encryptor->decrypt($stored));
    }

    private function blank(mixed $value): ?string
    {
        $text = trim((string) $value);
        return $text === '' ? null : $text;
    }
}
