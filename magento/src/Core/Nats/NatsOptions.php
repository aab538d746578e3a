<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Nats;

use InvalidArgumentException;

/** Where and how to connect: nats://host:4222 (plain) or tls://host:4222, plus credentials. */
final class NatsOptions
{
    public function __construct(
        public readonly string $host = '127.0.0.1',
        public readonly int $port = 4222,
        public readonly bool $tls = false,
        public readonly ?string $user = null,
        public readonly ?string $password = null,
        public readonly ?string $token = null,
        public readonly float $connectTimeout = 3.0,
        public readonly float $timeout = 5.0,
        public readonly string $inboxPrefix = '_INBOX',
        public readonly string $name = 'ledger-magento',
        public readonly ?string $caFile = null,
    ) {
        if (preg_match('/^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$/D', $inboxPrefix) !== 1) {
            throw new InvalidArgumentException('invalid inbox prefix "' . $inboxPrefix . '"');
        }
    }

    /**
     * Parses nats://[user:pass@|token@]host[:port] or tls://…; explicit credentials win over the
     * ones in the URL.
     */
    public static function fromUrl(
        string $url,
        ?string $user = null,
        ?string $password = null,
        ?string $token = null,
        float $timeout = 5.0,
        string $inboxPrefix = '_INBOX',
        ?string $caFile = null
    ): self {
        $url = trim($url);
        if (!str_contains($url, '://')) {
            $url = 'nats://' . $url;
        }
        $parts = parse_url($url);
        if ($parts === false || !isset($parts['host'])) {
            throw new InvalidArgumentException('invalid NATS URL "' . $url . '"');
        }
        $scheme = strtolower($parts['scheme'] ?? 'nats');
        if (!in_array($scheme, ['nats', 'tls'], true)) {
            throw new InvalidArgumentException('NATS URL scheme must be nats:// or tls://');
        }
        $urlUser = isset($parts['user']) ? rawurldecode($parts['user']) : null;
        $urlPass = isset($parts['pass']) ? rawurldecode($parts['pass']) : null;
        if ($urlUser !== null && $urlPass === null && $user === null && $token === null) {
            $token = $urlUser;
            $urlUser = null;
        }
        return new self(
            host: trim($parts['host'], '[]'),
            port: (int) ($parts['port'] ?? 4222),
            tls: $scheme === 'tls',
            user: self::blank($user) ?? $urlUser,
            password: self::blank($password) ?? $urlPass,
            token: self::blank($token),
            connectTimeout: min(3.0, $timeout),
            timeout: $timeout,
            inboxPrefix: $inboxPrefix,
            caFile: self::blank($caFile),
        );
    }

    /**
     * Whether plain nats:// connections are allowed: only with the development override
     * LEDGER_NATS_ALLOW_PLAIN=1 in the environment, because the store key's secret is sent
     * when connecting.
     */
    public static function plainAllowed(): bool
    {
        $value = getenv('LEDGER_NATS_ALLOW_PLAIN');
        return in_array(strtolower(trim((string) $value)), ['1', 'true', 'yes'], true);
    }

    /** Refuses a plain connection unless {@see plainAllowed()}; the message names the URL. */
    public function requireTls(): void
    {
        if (!$this->tls && !self::plainAllowed()) {
            throw new InvalidArgumentException(
                'NATS URL: Ledger requires tls:// (the key\'s secret is sent when connecting); '
                . 'nats://' . $this->host . ':' . $this->port . ' is refused '
                . '(set LEDGER_NATS_ALLOW_PLAIN=1 only for development)'
            );
        }
    }

    private static function blank(?string $value): ?string
    {
        return $value === null || $value === '' ? null : $value;
    }
}
