<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

use DateTimeImmutable;
use DateTimeZone;
use InvalidArgumentException;
use Ledger\SageSync\Core\Event\MerchantId;
use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Core\Http\HttpResponse;
use Ledger\SageSync\Core\Http\HttpTransport;
use Ledger\SageSync\Core\Publish\TransportException;

/**
 * The gateway's pairing API. Every call is outbound: the store asks, Ledger never calls back.
 *
 *   POST /v1/pairings                   → 201 {pairing_id, code, poll_secret, expires_at, poll_interval_seconds}
 *   GET  /v1/pairings/{id} (Bearer poll_secret)
 *                                       → 200 {"state":"pending"} or {"state":"paired", merchant_id,
 *                                         credentials{key_id, secret}, nats{urls, inbox_prefix}, gateway_url}
 *                                       → 410 pairing_expired / pairing_consumed, 401 / 404 → failed
 *   POST /v1/credentials/revoke (Bearer secret) → 200 {"revoked":true}; 401 = already revoked
 *
 * No answer, 429 and 5xx are TransportException (try again); other refusals PairingException.
 */
final class PairingClient
{
    public const CODE_LIFETIME = 1800;

    public function __construct(
        private HttpTransport $poster,
        private HttpReader $reader,
        private float $timeout = 10.0,
    ) {
    }

    /**
     * Asks for a new pairing code.
     *
     * @param array{store_url?: string, store_name?: string, module_version?: string} $about
     */
    public function start(string $gatewayUrl, array $about, DateTimeImmutable $now): PendingPairing
    {
        $base = self::baseUrl($gatewayUrl);
        $body = array_filter($about, static fn ($v): bool => is_string($v) && $v !== '');
        $response = $this->poster->post(
            $base . '/v1/pairings',
            ['Content-Type' => 'application/json', 'Accept' => 'application/json'],
            (string) json_encode((object) $body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE),
            $this->timeout
        );
        $answer = self::json($response);
        if ($response->status !== 201 && $response->status !== 200) {
            throw $this->refusal('pairing could not be started', $response, $answer);
        }
        $id = $answer['pairing_id'] ?? null;
        $code = $answer['code'] ?? null;
        $secret = $answer['poll_secret'] ?? null;
        if (!is_string($id) || !is_string($code) || !is_string($secret) || in_array('', [$id, $code, $secret], true)) {
            throw new PairingException('the gateway\'s answer is not a pairing code');
        }
        $expires = self::time($answer['expires_at'] ?? null)
            ?? $now->modify('+' . self::CODE_LIFETIME . ' seconds');
        $interval = max(1, min(60, (int) ($answer['poll_interval_seconds'] ?? 5)));
        return new PendingPairing($id, $code, $secret, $expires, $interval, $base);
    }

    /** Asks whether the code was entered; the credentials come back exactly once. */
    public function poll(PendingPairing $pending, DateTimeImmutable $now): PollAnswer
    {
        $response = $this->reader->get(
            self::baseUrl($pending->gatewayUrl) . '/v1/pairings/' . rawurlencode($pending->pairingId),
            ['Authorization' => 'Bearer ' . $pending->pollSecret, 'Accept' => 'application/json'],
            $this->timeout
        );
        $answer = self::json($response);
        if ($response->status === 200) {
            $state = $answer['state'] ?? null;
            if ($state === 'pending') {
                return new PollAnswer(PollAnswer::PENDING);
            }
            if ($state === 'paired') {
                return $this->paired($answer, $pending, $now);
            }
            $shown = substr((string) json_encode($state), 0, 60);
            throw new TransportException('pairing: unexpected state from the gateway: ' . $shown);
        }
        if (in_array($response->status, [401, 404, 410], true)) {
            $error = is_string($answer['error'] ?? null) ? $answer['error'] : 'http_' . $response->status;
            $message = is_string($answer['message'] ?? null)
                ? $answer['message']
                : self::explain($error, $response->status);
            return new PollAnswer(PollAnswer::FAILED, null, $error, $message);
        }
        throw $this->refusal('pairing status could not be read', $response, $answer);
    }

    /**
     * Revokes this store's key at the gateway.
     *
     * @return string|null the revoked key id, or null when the gateway already did not know it (401)
     */
    public function revoke(Credentials $credentials): ?string
    {
        $response = $this->poster->post(
            self::baseUrl($credentials->gatewayUrl) . '/v1/credentials/revoke',
            [
                'Authorization' => 'Bearer ' . $credentials->secret,
                'Content-Type' => 'application/json',
                'Accept' => 'application/json',
            ],
            '{}',
            $this->timeout
        );
        $answer = self::json($response);
        if ($response->status === 200) {
            return is_string($answer['key_id'] ?? null) ? $answer['key_id'] : $credentials->keyId;
        }
        if ($response->status === 401) {
            return null;
        }
        throw $this->refusal('the key could not be revoked', $response, $answer);
    }

    /**
     * The gateway's base URL without trailing slash: https://, or http:// on the loopback only.
     *
     * @throws InvalidArgumentException
     */
    public static function baseUrl(string $url): string
    {
        $url = trim($url);
        $parts = parse_url($url);
        $scheme = strtolower((string) ($parts['scheme'] ?? ''));
        $host = (string) ($parts['host'] ?? '');
        $loopback = in_array($host, ['127.0.0.1', 'localhost', '::1', '[::1]'], true);
        if ($host === '' || !($scheme === 'https' || ($scheme === 'http' && $loopback))) {
            throw new InvalidArgumentException('the Ledger gateway URL must be https:// (got "' . $url . '")');
        }
        return rtrim($url, '/');
    }

    /** @param array<string, mixed> $answer */
    private function paired(array $answer, PendingPairing $pending, DateTimeImmutable $now): PollAnswer
    {
        $merchant = $answer['merchant_id'] ?? null;
        $credentials = is_array($answer['credentials'] ?? null) ? $answer['credentials'] : [];
        $nats = is_array($answer['nats'] ?? null) ? $answer['nats'] : [];
        $keyId = $credentials['key_id'] ?? null;
        $secret = $credentials['secret'] ?? null;
        if (!is_string($merchant) || !MerchantId::isValid($merchant)) {
            $reason = 'The gateway sent an invalid merchant id.';
            return new PollAnswer(PollAnswer::FAILED, null, 'invalid_answer', $reason);
        }
        if (!is_string($keyId) || !is_string($secret) || $keyId === '' || $secret === '') {
            return new PollAnswer(PollAnswer::FAILED, null, 'invalid_answer', 'The gateway sent no credentials.');
        }
        $urls = [];
        foreach ((array) ($nats['urls'] ?? []) as $url) {
            if (is_string($url) && preg_match('#^(nats|tls)://[^\s]+$#i', $url) === 1) {
                $urls[] = $url;
            }
        }
        $prefix = $nats['inbox_prefix'] ?? null;
        if (!is_string($prefix) || preg_match('/^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$/D', $prefix) !== 1) {
            $prefix = '_INBOX.' . $merchant;
        }
        $gateway = $pending->gatewayUrl;
        if (is_string($answer['gateway_url'] ?? null)) {
            try {
                $gateway = self::baseUrl($answer['gateway_url']);
            } catch (InvalidArgumentException) {
                $gateway = $pending->gatewayUrl;
            }
        }
        return new PollAnswer(
            PollAnswer::PAIRED,
            new Credentials($merchant, $keyId, $secret, $urls, $prefix, $gateway, $now)
        );
    }

    /** @param array<string, mixed> $answer */
    private function refusal(string $what, HttpResponse $response, array $answer): \RuntimeException
    {
        $reason = $what . ': gateway answered HTTP ' . $response->status;
        if (is_string($answer['error'] ?? null)) {
            $reason .= ' ' . $answer['error'];
        }
        if (is_string($answer['message'] ?? null)) {
            $reason .= ': ' . $answer['message'];
        }
        if ($response->status === 429 || $response->status >= 500) {
            return new TransportException($reason);
        }
        return new PairingException($reason);
    }

    private static function explain(string $error, int $status): string
    {
        return match (true) {
            $error === 'pairing_expired' => 'The pairing code expired before it was entered.',
            $error === 'pairing_consumed' => 'The pairing code was already used.',
            $status === 401 => 'The gateway did not accept this pairing any more.',
            default => 'The gateway does not know this pairing.',
        };
    }

    /** @return array<string, mixed> */
    private static function json(HttpResponse $response): array
    {
        $data = json_decode($response->body, true);
        return is_array($data) ? $data : [];
    }

    private static function time(mixed $value): ?DateTimeImmutable
    {
        if (!is_string($value) || $value === '') {
            return null;
        }
        try {
            return (new DateTimeImmutable($value))->setTimezone(new DateTimeZone('UTC'));
        } catch (\Exception) {
            return null;
        }
    }
}
