<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\E2e;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Http\HttpsPublisher;
use Ledger\SageSync\Core\Http\StreamHttpTransport;
use Ledger\SageSync\Core\Nats\NatsOptions;
use Ledger\SageSync\Core\Nats\NatsPublisher;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Outbox\Relay;
use Ledger\SageSync\Core\Outbox\RetryPolicy;
use Ledger\SageSync\Core\Publish\FailoverPublisher;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\Status\HttpsStatusFeed;
use Ledger\SageSync\Core\Status\InMemoryCursorStore;
use Ledger\SageSync\Core\Status\StatusPull;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\ArrayDocuments;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\FixedSource;
use Ledger\SageSync\Test\Support\Glue;
use PHPUnit\Framework\TestCase;

/**
 * The HTTPS publisher over a real socket, against a small stand-in of the gateway's
 * POST /v1/events run by PHP's built-in web server; the NATS → HTTPS failover; and the status
 * feed client against the stand-in's GET /v1/status.
 */
final class HttpsFallbackTest extends TestCase
{
    /** @var resource|null */
    private static $server = null;
    private static string $baseUrl = '';

    public static function setUpBeforeClass(): void
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr((string) strrchr((string) stream_socket_get_name($probe, false), ':'), 1);
        fclose($probe);
        $id = getmypid() . '-' . $port;
        @unlink(sys_get_temp_dir() . '/ledger-fake-gateway-' . $id . '.json');
        $command = [PHP_BINARY, '-S', '127.0.0.1:' . $port, __DIR__ . '/fake-gateway.php'];
        self::$server = proc_open($command, [0 => ['pipe', 'r'], 1 => ['file', '/dev/null', 'w'],
            2 => ['file', '/dev/null', 'w']], $pipes, null, ['LEDGER_FAKE_GATEWAY_ID' => $id]);
        self::$baseUrl = 'http://127.0.0.1:' . $port;
        for ($i = 0; $i < 100; $i++) {
            $socket = @stream_socket_client('tcp://127.0.0.1:' . $port, $errno, $error, 0.1);
            if ($socket !== false) {
                fclose($socket);
                return;
            }
            usleep(50000);
        }
        self::fail('the fake gateway did not start');
    }

    public static function tearDownAfterClass(): void
    {
        if (is_resource(self::$server)) {
            proc_terminate(self::$server);
            proc_close(self::$server);
        }
    }

    private static function https(string $key = 'ik_test_key'): HttpsPublisher
    {
        return new HttpsPublisher(self::$baseUrl, $key, new StreamHttpTransport(), 5.0);
    }

    public function testAcceptedThenDuplicateOverTheWire(): void
    {
        $message = new OutboundMessage('e-1', 'magento.acme.invoice.paid', '{"event_id":"e-1"}', [
            'Nats-Msg-Id' => 'e-1',
            'traceparent' => '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        ]);
        $first = self::https()->publish($message);
        self::assertFalse($first->duplicate);
        self::assertSame(1, $first->sequence);
        $second = self::https()->publish($message);
        self::assertTrue($second->duplicate);
        self::assertSame(1, $second->sequence);
    }

    public function testStatusFeedIsWalkedOverTheWire(): void
    {
        $sink = new Glue();
        $cursors = new InMemoryCursorStore();
        $pull = new StatusPull(
            new HttpsStatusFeed(self::$baseUrl, 'ik_test_key', new StreamHttpTransport(), 5.0),
            $sink,
            new ArrayDocuments(['invoice:1:000000123' => 3301]),
            $cursors
        );
        $result = $pull->run(2);
        self::assertSame(['pages' => 2, 'applied' => 2, 'ignored' => 1, 'cursor' => '9', 'more' => false], $result);
        self::assertSame(['5', '9'], $cursors->saved);
        self::assertSame([
            ['invoice', 3301, 'pending', 'Received by Ledger, not in Sage yet (sage_throttled)'],
            ['invoice', 3301, 'synced', 'In Sage as SI-1045'],
        ], $sink->statuses);
        $again = $pull->run();
        self::assertSame(['pages' => 1, 'applied' => 0, 'ignored' => 0, 'cursor' => '9', 'more' => false], $again);

        try {
            (new HttpsStatusFeed(self::$baseUrl, 'wrong', new StreamHttpTransport(), 5.0))->fetch('9', 10);
            self::fail('expected 401');
        } catch (TransportException $e) {
            self::assertStringContainsString('HTTP 401 unauthorized', $e->getMessage());
        }
    }

    public function testWrongKeyAndInvalidEvent(): void
    {
        $message = new OutboundMessage('e-2', 'magento.acme.invoice.paid', '{"event_id":"e-2"}', []);
        try {
            self::https('wrong')->publish($message);
            self::fail('expected 401');
        } catch (TransportException $e) {
            self::assertStringContainsString('401', $e->getMessage());
        }
        $this->expectException(RejectedException::class);
        $this->expectExceptionMessage('/event_id');
        self::https()->publish(new OutboundMessage('e-3', 'magento.acme.invoice.paid', '{}', []));
    }

    public function testRelayFallsBackToHttpsWhenNatsIsUnreachable(): void
    {
        $clock = new FixedClock();
        $store = new InMemoryOutboxStore();
        (new EventRecorder($store, new SnapshotSerializer(), $clock, new FixedSource()))
            ->creditmemo(Documents::ukCreditmemo(), Documents::ukCardOrder(), 1);
        $nats = NatsPublisher::withOptions(new NatsOptions(port: 1, connectTimeout: 0.5));
        $relay = new Relay(
            $store,
            new FailoverPublisher($nats, self::https()),
            new EnvelopeFactory(),
            new RetryPolicy(),
            $clock
        );
        $result = $relay->run('hartley-goods', 10);
        self::assertSame(1, $result->published, $result->summary());
        $row = $store->all()[0];
        self::assertSame(OutboxStatus::Published, $row->status);
        self::assertSame('https', $row->transport);
        self::assertNull($row->stream);
        self::assertGreaterThan(0, $row->sequence);
    }
}
