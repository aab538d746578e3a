<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Nats;

use Closure;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Publish\PublisherInterface;
use Ledger\SageSync\Core\Publish\TransportException;

/**
 * Publishes to JetStream with Nats-Msg-Id = event_id. Connects on first use; a connection that
 * went stale between two publishes is reopened once (the re-send is deduplicated by JetStream).
 */
final class NatsPublisher implements PublisherInterface
{
    private ?NatsClient $client = null;

    /** @param Closure(): NatsClient $clientFactory */
    public function __construct(private Closure $clientFactory)
    {
    }

    /** A publisher for `$options`; refuses plain nats:// (see {@see NatsOptions::requireTls()}). */
    public static function withOptions(NatsOptions $options): self
    {
        $options->requireTls();
        return new self(static fn (): NatsClient => new NatsClient($options));
    }

    public function publish(OutboundMessage $message): PublishAck
    {
        $reused = $this->client !== null && $this->client->isConnected();
        try {
            return $this->client()->jetStreamPublish($message->subject, $message->body, $message->headers);
        } catch (TransportException $e) {
            $this->close();
            if (!$reused) {
                throw $e;
            }
        }
        try {
            return $this->client()->jetStreamPublish($message->subject, $message->body, $message->headers);
        } catch (TransportException $e) {
            $this->close();
            throw $e;
        }
    }

    public function close(): void
    {
        $this->client?->close();
        $this->client = null;
    }

    private function client(): NatsClient
    {
        if ($this->client === null) {
            $this->client = ($this->clientFactory)();
        }
        $this->client->connect();
        return $this->client;
    }
}
