<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Http;

use InvalidArgumentException;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Publish\PublisherInterface;
use Ledger\SageSync\Core\Publish\PublishException;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Publish\TransportException;

/**
 * The fallback for hosts that block outbound NATS: POST /v1/events on Ledger's gateway with the
 * merchant's ingest key (services/gateway/src/ingest.rs). The gateway validates the event and
 * publishes it with the same Nats-Msg-Id.
 *
 *   202 {"status":"accepted"|"duplicate","event_id":…,"stream_sequence":…} → stored
 *   422 invalid_event (quarantined by the gateway)                       → rejected, dead letter
 *   401 / 403 (key unknown, other merchant), other 4xx                   → configuration, stop
 *   503 / 5xx / 429                                                      → try again later
 */
final class HttpsPublisher implements PublisherInterface
{
    private string $endpoint;

    public function __construct(
        string $baseUrl,
        private string $ingestKey,
        private HttpTransport $http,
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
        $this->endpoint = rtrim(trim($baseUrl), '/') . '/v1/events';
    }

    public function publish(OutboundMessage $message): PublishAck
    {
        $headers = [
            'Authorization' => 'Bearer ' . $this->ingestKey,
            'Content-Type' => 'application/json',
            'Accept' => 'application/json',
        ];
        if (isset($message->headers['traceparent'])) {
            $headers['traceparent'] = $message->headers['traceparent'];
        }
        $response = $this->http->post($this->endpoint, $headers, $message->body, $this->timeout);
        $answer = json_decode($response->body, true);
        $answer = is_array($answer) ? $answer : [];
        if ($response->status === 202 || $response->status === 200) {
            return new PublishAck(
                null,
                (int) ($answer['stream_sequence'] ?? 0),
                ($answer['status'] ?? '') === 'duplicate',
                'https'
            );
        }
        $reason = 'gateway answered HTTP ' . $response->status . $this->describe($answer);
        if ($response->status === 422) {
            throw new RejectedException($reason);
        }
        if ($response->status === 429 || $response->status >= 500) {
            throw new TransportException($reason);
        }
        if ($response->status >= 400) {
            throw new TransportException($reason . ' (check the gateway URL and ingest key)');
        }
        throw new PublishException($reason);
    }

    public function close(): void
    {
    }

    /** @param array<string, mixed> $answer */
    private function describe(array $answer): string
    {
        $text = '';
        if (isset($answer['error'])) {
            $text .= ' ' . (string) $answer['error'];
        }
        if (isset($answer['message'])) {
            $text .= ': ' . (string) $answer['message'];
        }
        foreach (array_slice((array) ($answer['issues'] ?? []), 0, 5) as $issue) {
            if (is_array($issue)) {
                $text .= '; ' . ($issue['field'] ?? '') . ' ' . ($issue['reason'] ?? '');
            }
        }
        return $text;
    }
}
