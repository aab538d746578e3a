<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model;

use Ledger\SageSync\Core\Nats\NatsOptions;
use Ledger\SageSync\Core\Pairing\Credentials;
use Ledger\SageSync\Model\Pairing\ConfigPairingStore;
use Magento\Framework\App\Config\ScopeConfigInterface;
use Magento\Framework\Encryption\EncryptorInterface;

/**
 * The module's settings (Stores > Configuration > Ledger > Sage Sync), global scope only.
 *
 * Credentials come from pairing (Model\Pairing\ConfigPairingStore) and win over the hand-typed
 * fields (merchant id, NATS user/password/token, ingest key), which remain as an operator's
 * override for stores that are not paired.
 */
class Config
{
    public const DEFAULT_GATEWAY = 'https://ledger.example.com';

    public const TRANSPORT_NATS = 'nats';
    public const TRANSPORT_HTTPS = 'https';
    public const TRANSPORT_NATS_HTTPS = 'nats_https';

    private const PREFIX = 'ledger_sage_sync/';

    public function __construct(
        private ScopeConfigInterface $scopeConfig,
        private EncryptorInterface $encryptor,
    ) {
    }

    /** Whether events are recorded at all. */
    public function isEnabled(): bool
    {
        return $this->scopeConfig->isSetFlag(self::PREFIX . 'general/enabled');
    }

    /** The key delivered by pairing, or null when the store is not paired. */
    public function credentials(): ?Credentials
    {
        return ConfigPairingStore::readCredentials($this->scopeConfig, $this->encryptor);
    }

    /** True when the store publishes with its own paired key. */
    public function isPaired(): bool
    {
        return $this->credentials() !== null;
    }

    /** The paired merchant id, else the hand-typed one; empty when neither. */
    public function merchantId(): string
    {
        return $this->credentials()?->merchantId ?? trim((string) $this->value('general/merchant_id'));
    }

    /** Where pairing codes are requested. */
    public function pairingGatewayUrl(): string
    {
        return trim((string) $this->value('pairing/gateway_url')) ?: self::DEFAULT_GATEWAY;
    }

    /**
     * What the gateway is told about the store when a code is requested.
     *
     * @return array{store_url: string, store_name: string, module_version: string}
     */
    public function storeDetails(): array
    {
        return [
            'store_url' => trim((string) $this->scopeConfig->getValue('web/secure/base_url')),
            'store_name' => trim((string) $this->scopeConfig->getValue('general/store_information/name')),
            'module_version' => ModuleSource::MODULE_VERSION,
        ];
    }

    /** nats, https or nats_https (NATS with the HTTPS gateway as fallback). */
    public function transport(): string
    {
        $transport = (string) $this->value('general/transport');
        $known = [self::TRANSPORT_NATS, self::TRANSPORT_HTTPS, self::TRANSPORT_NATS_HTTPS];
        return in_array($transport, $known, true) ? $transport : self::TRANSPORT_NATS_HTTPS;
    }

    /** The paired NATS URL, else the hand-typed one. */
    public function natsUrl(): string
    {
        $paired = $this->credentials()?->natsUrl() ?? '';
        return $paired !== '' ? $paired : trim((string) $this->value('nats/url'));
    }

    /**
     * Paired: user = key id, password = secret, inboxes under the prefix the server allows.
     *
     * @param bool $quick short timeouts for the publish right after an admin save
     */
    public function natsOptions(bool $quick = false): NatsOptions
    {
        $timeout = $quick ? 2.0 : (float) max(1, min(60, (int) $this->value('nats/timeout') ?: 5));
        $credentials = $this->credentials();
        if ($credentials !== null) {
            return NatsOptions::fromUrl(
                $this->natsUrl(),
                $credentials->keyId,
                $credentials->secret,
                null,
                $timeout,
                $credentials->inboxPrefix,
                $this->blank($this->value('nats/ca_file')),
            );
        }
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

    /** The gateway for /v1/events and /v1/status: the paired one, else the hand-typed one. */
    public function httpsUrl(): string
    {
        $paired = $this->credentials()?->gatewayUrl ?? '';
        return $paired !== '' ? $paired : trim((string) $this->value('https/url'));
    }

    /** The bearer for the gateway: the paired secret, else the hand-typed ingest key. */
    public function httpsKey(): string
    {
        return $this->credentials()?->secret ?? (string) $this->secret('https/ingest_key');
    }

    /** Events per relay run. */
    public function batchSize(): int
    {
        return max(1, min(5000, (int) $this->value('relay/batch_size') ?: 200));
    }

    /** Attempts before an event becomes a dead letter. */
    public function maxAttempts(): int
    {
        return max(1, min(50, (int) $this->value('relay/max_attempts') ?: 12));
    }

    /** Publish right after an admin save commits. */
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
            // Neither paired nor configured by hand: pairing is the one thing to do.
            $problems[] = 'Not paired with Ledger: generate a pairing code under "Pairing" below '
                . '(or run bin/magento ledger:pairing:start).';
            return $problems;
        }
        $transport = $this->transport();
        if ($transport !== self::TRANSPORT_HTTPS && $this->natsUrl() === '') {
            $problems[] = 'The NATS URL is not set.';
        } elseif (
            $transport !== self::TRANSPORT_HTTPS
            && !str_starts_with(strtolower($this->natsUrl()), 'tls://')
            && !NatsOptions::plainAllowed()
        ) {
            $problems[] = 'The NATS URL must start with tls:// (the key\'s secret is sent when connecting).';
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
