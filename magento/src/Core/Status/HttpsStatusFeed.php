<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

use DateTimeImmutable;
use Exception;
use InvalidArgumentException;
use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Core\Publish\TransportException;

/**
 * Ledger's status feed over HTTPS: GET /v1/status?cursor=N&limit=M on the gateway with the
 * merchant's ingest key (services/gateway/src/status.rs), answered with
 * {"items": [{cursor, entity, document_key, state, sage_number, sage_reference, sage_id,
 * skip_reason, error_code, detail, message, at, …}], "next_cursor": N, "more": bool}. `detail` is
 * the human-readable reason beside `skip_reason` / `error_code` (which line, which rate, which
 * dates); `sage_number` is Sage's own number (SI-12, SCN-3), shown in preference to the id.
 *
 *   200           → the page (items it cannot read are passed over, the cursor still moves)
 *   401 / 403     → wrong ingest key: TransportException, nothing consumed
 *   429 / 5xx     → gateway or stream unavailable: TransportException, nothing consumed
 *   no answer     → TransportException from the transport (timeout, refused, TLS)
 */
final class HttpsStatusFeed implements StatusFeed
{
    private string $endpoint;

    public function __construct(
        string $baseUrl,
        private string $ingestKey,
        private HttpReader $http,
        private float $timeout = 10.0,
    ) {
        $parts = parse_url(trim($baseUrl));
        $scheme = strtolower((string) ($parts['scheme'] ?? ''));
        $host = (string) ($parts['host'] ?? '');
        $loopback = in_array($host, ['127.0.0.1', 'localhost', '::1', '[::1]'], true);
        if ($host === '' || !($scheme === 'https' || ($scheme === 'http' && $loopback))) {
            throw new InvalidArgumentException('the Ledger gateway URL must be https:// (got "' . $baseUrl . '")');
        }
        if ($ingestKey === '') {
            throw new InvalidArgumentException('the Ledger ingest key is empty');
        }
        $this->endpoint = rtrim(trim($baseUrl), '/') . '/v1/status';
    }

    public function fetch(?string $cursor, int $limit): array
    {
        $from = $cursor !== null && preg_match('/^\d{1,19}$/', $cursor) === 1 ? $cursor : '0';
        $url = $this->endpoint . '?' . http_build_query(['cursor' => $from, 'limit' => max(1, min(1000, $limit))]);
        $response = $this->http->get($url, [
            'Authorization' => 'Bearer ' . $this->ingestKey,
            'Accept' => 'application/json',
        ], $this->timeout);
        $answer = json_decode($response->body, true);
        if ($response->status !== 200) {
            $reason = 'status feed: gateway answered HTTP ' . $response->status;
            if (is_array($answer) && isset($answer['error'])) {
                $reason .= ' ' . (string) $answer['error']
                    . (isset($answer['message']) ? ': ' . (string) $answer['message'] : '');
            }
            if ($response->status === 401 || $response->status === 403) {
                $reason .= ' (check the ingest key)';
            }
            throw new TransportException($reason);
        }
        if (
            !is_array($answer) || !is_array($answer['items'] ?? null)
            || !is_int($answer['next_cursor'] ?? null) || $answer['next_cursor'] < 0
        ) {
            throw new TransportException('status feed: the gateway\'s answer is not a status page');
        }
        $updates = [];
        foreach ($answer['items'] as $item) {
            $update = is_array($item) ? $this->update($item) : null;
            if ($update !== null) {
                $updates[] = $update;
            }
        }
        return [
            'updates' => $updates,
            'cursor' => (string) $answer['next_cursor'],
            'more' => ($answer['more'] ?? false) === true,
        ];
    }

    /** @param array<mixed> $item */
    private function update(array $item): ?StatusUpdate
    {
        $status = SageStatus::tryFrom((string) ($item['state'] ?? ''));
        $entity = $item['entity'] ?? null;
        $key = $item['document_key'] ?? null;
        if ($status === null || !is_string($entity) || !is_string($key) || $entity === '' || $key === '') {
            return null;
        }
        $code = match ($status) {
            SageStatus::Skipped => self::text($item['skip_reason'] ?? null),
            SageStatus::Synced => null,
            default => self::text($item['error_code'] ?? null),
        };
        return new StatusUpdate(
            $entity,
            $key,
            $status,
            self::text($item['message'] ?? null),
            self::text($item['sage_reference'] ?? null),
            $code,
            self::time($item['at'] ?? null),
            // A synced document has no detail, except a credit memo's settlement.
            $status === SageStatus::Synced && $entity !== 'creditmemo' ? null : self::text($item['detail'] ?? null),
            self::text($item['sage_number'] ?? null),
            self::text($item['sage_id'] ?? null),
        );
    }

    private static function text(mixed $value): ?string
    {
        return is_string($value) && trim($value) !== '' ? trim($value) : null;
    }

    private static function time(mixed $value): ?DateTimeImmutable
    {
        if (!is_string($value) || $value === '') {
            return null;
        }
        try {
            return new DateTimeImmutable($value);
        } catch (Exception) {
            return null;
        }
    }
}
