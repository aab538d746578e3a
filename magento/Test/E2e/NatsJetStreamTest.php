<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\E2e;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Nats\NatsClient;
use Ledger\SageSync\Core\Nats\NatsOptions;
use Ledger\SageSync\Core\Nats\NatsPublisher;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Outbox\Relay;
use Ledger\SageSync\Core\Outbox\RetryPolicy;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\FixedSource;
use PHPUnit\Framework\TestCase;

/**
 * The PHP client against a real nats-server with JetStream and user/password auth, started by
 * dev/test.sh (LEDGER_TEST_NATS_URL=nats://user:pass@127.0.0.1:port). Runs in order on one
 * fresh server.
 */
final class NatsJetStreamTest extends TestCase
{
    private const MERCHANT = 'hartley-goods';

    private static function url(): string
    {
        $url = getenv('LEDGER_TEST_NATS_URL');
        if ($url === false || $url === '') {
            self::markTestSkipped('LEDGER_TEST_NATS_URL is not set (dev/test.sh starts a nats-server)');
        }
        return $url;
    }

    private static function client(?string $password = null): NatsClient
    {
        $options = NatsOptions::fromUrl(self::url(), timeout: 5.0);
        if ($password !== null) {
            $options = NatsOptions::fromUrl(self::url(), $options->user, $password, timeout: 5.0);
        }
        return new NatsClient($options);
    }

    public function testWrongPasswordIsRefused(): void
    {
        $client = self::client('not-the-password');
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('Authorization Violation');
        $client->connect();
    }

    public function testPublishBeforeTheStreamExistsIsNoResponders(): void
    {
        $client = self::client();
        $client->connect();
        self::assertTrue($client->serverInfo()['jetstream'] ?? false, 'server runs with -js');
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('no JetStream stream stores subject');
        $client->jetStreamPublish('magento.' . self::MERCHANT . '.invoice.created', '{}', ['Nats-Msg-Id' => 'x']);
    }

    public function testCreateTheStream(): void
    {
        $info = self::client()->jetStreamApi('$JS.API.STREAM.CREATE.MAGENTO_EVENTS', [
            'name' => 'MAGENTO_EVENTS',
            'subjects' => ['magento.>'],
            'storage' => 'file',
            'retention' => 'limits',
            'duplicate_window' => 24 * 3600 * 1000000000,
        ]);
        self::assertSame('MAGENTO_EVENTS', $info['config']['name']);
        self::assertSame(0, $info['state']['messages']);
    }

    public function testRelayPublishesWithPubAckAndARepublishIsADuplicate(): void
    {
        $clock = new FixedClock();
        $store = new InMemoryOutboxStore();
        $recorder = new EventRecorder($store, new SnapshotSerializer(), $clock, new FixedSource());
        $recorder->invoice(EventType::InvoiceCreated, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1);
        $recorder->invoice(EventType::InvoicePaid, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1);
        $publisher = NatsPublisher::withOptions(NatsOptions::fromUrl(self::url()));
        $relay = new Relay($store, $publisher, new EnvelopeFactory(), new RetryPolicy(), $clock);

        $result = $relay->run(self::MERCHANT, 100);
        self::assertSame(2, $result->published, $result->summary());
        [$created, $paid] = $store->all();
        self::assertSame(OutboxStatus::Published, $created->status);
        self::assertSame('MAGENTO_EVENTS', $created->stream);
        self::assertSame(1, $created->sequence);
        self::assertSame(2, $paid->sequence);
        self::assertFalse($created->duplicate);

        // The relay crashed after the PubAck but before it marked the row: the same row (same
        // event id) goes out again and JetStream reports it as a duplicate of sequence 1.
        $replay = new InMemoryOutboxStore();
        $again = clone $created;
        $again->id = null;
        $again->status = OutboxStatus::Pending;
        $again->sequence = null;
        $replay->append($again);
        $result = (new Relay($replay, $publisher, new EnvelopeFactory(), new RetryPolicy(), $clock))
            ->run(self::MERCHANT, 100);
        self::assertSame(1, $result->duplicates);
        $row = $replay->all()[0];
        self::assertSame(OutboxStatus::Published, $row->status);
        self::assertTrue($row->duplicate);
        self::assertSame(1, $row->sequence);

        // What JetStream stored: subject, headers and the exact body.
        $client = self::client();
        $stored = $client->jetStreamApi('$JS.API.STREAM.MSG.GET.MAGENTO_EVENTS', ['seq' => 1])['message'];
        self::assertSame('magento.' . self::MERCHANT . '.invoice.created', $stored['subject']);
        $headers = base64_decode($stored['hdrs'], true);
        self::assertStringContainsString('Nats-Msg-Id: ' . $created->eventId . "\r\n", $headers);
        self::assertStringContainsString("Ledger-Schema-Version: 1\r\n", $headers);
        $event = json_decode(base64_decode($stored['data'], true), true);
        self::assertSame($created->eventId, $event['event_id']);
        self::assertSame('71.40', $event['payload']['invoice']['grand_total']);

        $info = $client->jetStreamApi('$JS.API.STREAM.INFO.MAGENTO_EVENTS', []);
        self::assertSame(2, $info['state']['messages'], 'the duplicate was not stored');
    }

    public function testManySequentialAcknowledgedPublishes(): void
    {
        $client = self::client();
        $started = microtime(true);
        $last = 0;
        for ($i = 0; $i < 200; $i++) {
            $ack = $client->jetStreamPublish(
                'magento.' . self::MERCHANT . '.product.saved',
                str_repeat('x', 2048),
                ['Nats-Msg-Id' => 'bulk-' . $i]
            );
            self::assertGreaterThan($last, $ack->sequence);
            $last = $ack->sequence;
        }
        self::assertLessThan(10.0, microtime(true) - $started);
    }
}
