<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Pairing;

use Ledger\SageSync\Core\Pairing\Credentials;
use Ledger\SageSync\Core\Pairing\PairingStore;
use Ledger\SageSync\Core\Pairing\PendingPairing;
use Magento\Framework\App\Config\ReinitableConfigInterface;
use Magento\Framework\App\Config\ScopeConfigInterface;
use Magento\Framework\App\Config\Storage\WriterInterface;
use Magento\Framework\Encryption\EncryptorInterface;

/**
 * The pairing in core_config_data (default scope), under ledger_sage_sync/paired/…, which is no
 * admin field: the merchant never types these. Secrets (the key secret and the poll secret) are
 * encrypted with Magento's crypt key and listed as sensitive in etc/di.xml.
 *
 * After each write the config cache is reinitialised, so cron and the next admin request see the
 * change at once.
 */
class ConfigPairingStore implements PairingStore
{
    public const CREDENTIALS = 'ledger_sage_sync/paired/credentials';
    public const SECRET = 'ledger_sage_sync/paired/secret';
    public const PENDING = 'ledger_sage_sync/paired/pending';
    public const POLL_SECRET = 'ledger_sage_sync/paired/poll_secret';
    public const MESSAGE = 'ledger_sage_sync/paired/message';

    /** Every path this store writes. */
    public const PATHS = [self::CREDENTIALS, self::SECRET, self::PENDING, self::POLL_SECRET, self::MESSAGE];

    public function __construct(
        private ReinitableConfigInterface $config,
        private WriterInterface $writer,
        private EncryptorInterface $encryptor,
    ) {
    }

    /** Reads the credentials without needing a writer (Model\Config uses it for every publish). */
    public static function readCredentials(ScopeConfigInterface $config, EncryptorInterface $encryptor): ?Credentials
    {
        $data = self::json($config->getValue(self::CREDENTIALS));
        return $data === null ? null : Credentials::fromArray($data, self::decrypt($config, $encryptor, self::SECRET));
    }

    public function pending(): ?PendingPairing
    {
        $data = self::json($this->config->getValue(self::PENDING));
        return $data === null
            ? null
            : PendingPairing::fromArray($data, self::decrypt($this->config, $this->encryptor, self::POLL_SECRET));
    }

    public function savePending(?PendingPairing $pending): void
    {
        if ($pending === null) {
            $this->forget([self::PENDING, self::POLL_SECRET]);
            return;
        }
        $this->write([
            self::PENDING => $this->encode($pending->toArray()),
            self::POLL_SECRET => $this->encryptor->encrypt($pending->pollSecret),
        ]);
    }

    public function credentials(): ?Credentials
    {
        return self::readCredentials($this->config, $this->encryptor);
    }

    public function saveCredentials(?Credentials $credentials): void
    {
        if ($credentials === null) {
            $this->forget([self::CREDENTIALS, self::SECRET]);
            return;
        }
        // The secret first: credentials without it would read as "not paired", never half-paired.
        $this->write([
            self::SECRET => $this->encryptor->encrypt($credentials->secret),
            self::CREDENTIALS => $this->encode($credentials->toArray()),
        ]);
    }

    public function message(): ?string
    {
        $message = trim((string) $this->config->getValue(self::MESSAGE));
        return $message === '' ? null : $message;
    }

    public function saveMessage(?string $message): void
    {
        if ($message === null || trim($message) === '') {
            $this->forget([self::MESSAGE]);
            return;
        }
        $this->write([self::MESSAGE => mb_substr($message, 0, 1000)]);
    }

    /** @param array<string, string> $values */
    private function write(array $values): void
    {
        foreach ($values as $path => $value) {
            $this->writer->save($path, $value);
        }
        $this->config->reinit();
    }

    /** @param list<string> $paths */
    private function forget(array $paths): void
    {
        foreach ($paths as $path) {
            $this->writer->delete($path);
        }
        $this->config->reinit();
    }

    /** @param array<string, mixed> $data */
    private function encode(array $data): string
    {
        return json_encode($data, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    }

    /** @return array<string, mixed>|null */
    private static function json(mixed $stored): ?array
    {
        if (!is_string($stored) || $stored === '') {
            return null;
        }
        $data = json_decode($stored, true);
        return is_array($data) ? $data : null;
    }

    private static function decrypt(ScopeConfigInterface $config, EncryptorInterface $encryptor, string $path): string
    {
        $stored = trim((string) $config->getValue($path));
        return $stored === '' ? '' : trim((string) $encryptor->decrypt($stored));
    }
}
