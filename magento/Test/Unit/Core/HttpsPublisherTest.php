<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use InvalidArgumentException;
use Ledger\SageSync\Core\Http\HttpResponse;
use Ledger\SageSync\Core\Http\HttpsPublisher;
use Ledger\SageSync\Core\Http\HttpTransport;
use Ledger\SageSync\Core\Publish\FailoverPublisher;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Publish\PublishException;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Test\Support\ScriptedPublisher;
use PHPUnit\Framework\TestCase;

final class HttpsPublisherTest extends TestCase
{
    /** @var list<array{string, array<string, string>, string}> */
    private array $requests = [];

    private function publisher(int $status, string $body): HttpsPublisher
    {
        $transport = new class ($status, $body, $this->requests) implements HttpTransport {
            public function __construct(private int $status, private string $body, private array &$log)
            {
            }

            public function post(string $url, array $headers, string $body, float $timeout): HttpResponse
            {
                $this->log[] = [$url, $headers, $body];
                return new HttpResponse($this->status, $this->body);
            }
        };
        return new HttpsPublisher('https://ingest.ledger.example/', 'ik_live_abc', $transport);
    }

    private static function message(): OutboundMessage
    {
        return new OutboundMessage('e2a7c3f9-8b14-4d0e-9f6a-3c5b7d9e1f33', 'magento.acme.invoice.paid', '{"a":1}', [
            'Nats-Msg-Id' => 'e2a7c3f9-8b14-4d0e-9f6a-3c5b7d9e1f33',
            'traceparent' => '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        ]);
    }

    public function testAcceptedAndDuplicate(): void
    {
        $ack = $this->publisher(202, '{"status":"accepted","event_id":"e2a7","stream_sequence":12}')
            ->publish(self::message());
        self::assertSame(12, $ack->sequence);
        self::assertFalse($ack->duplicate);
        self::assertSame('https', $ack->transport);
        [$url, $headers, $body] = $this->requests[0];
        self::assertSame('https://ingest.ledger.example/v1/events', $url);
        self::assertSame('Bearer ik_live_abc', $headers['Authorization']);
        self::assertSame('application/json', $headers['Content-Type']);
        self::assertSame('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', $headers['traceparent']);
        self::assertSame('{"a":1}', $body);

        $dup = $this->publisher(202, '{"status":"duplicate","stream_sequence":12}')->publish(self::message());
        self::assertTrue($dup->duplicate);
    }

    public function testContractViolationIsRejectedWithTheFields(): void
    {
        $answer = '{"error":"invalid_event","message":"quarantined","issues":[{"field":"/payload/invoice/items/0/qty",'
            . '"reason":"0 is less than or equal to the minimum of 0"}]}';
        try {
            $this->publisher(422, $answer)->publish(self::message());
            self::fail('expected a rejection');
        } catch (RejectedException $e) {
            self::assertStringContainsString('/payload/invoice/items/0/qty', $e->getMessage());
        }
    }

    /** @return array<string, array{int, class-string}> */
    public static function failures(): array
    {
        return [
            'unknown key' => [401, TransportException::class],
            'other merchant' => [403, TransportException::class],
            'log unavailable' => [503, TransportException::class],
            'rate limited' => [429, TransportException::class],
            'redirect' => [302, PublishException::class],
        ];
    }

    /**
     * @dataProvider failures
     * @param class-string<\Throwable> $expected
     */
    public function testFailures(int $status, string $expected): void
    {
        try {
            $this->publisher($status, '{"error":"x"}')->publish(self::message());
            self::fail('expected ' . $expected);
        } catch (PublishException $e) {
            self::assertSame($expected, get_class($e));
            self::assertStringContainsString((string) $status, $e->getMessage());
        }
    }

    public function testRefusesPlainHttpToARemoteHost(): void
    {
        $this->expectException(InvalidArgumentException::class);
        new HttpsPublisher('http://ingest.ledger.example', 'k', $this->createMock(HttpTransport::class));
    }

    public function testFailoverOnlyOnTransportErrors(): void
    {
        $primary = new ScriptedPublisher(new TransportException('cannot connect to NATS'));
        $fallback = new ScriptedPublisher(new PublishAck(null, 5, false, 'https'));
        $ack = (new FailoverPublisher($primary, $fallback))->publish(self::message());
        self::assertSame('https', $ack->transport);
        self::assertCount(1, $fallback->sent);

        $primary = new ScriptedPublisher(new RejectedException('too large'));
        $fallback = new ScriptedPublisher();
        try {
            (new FailoverPublisher($primary, $fallback))->publish(self::message());
            self::fail('expected a rejection');
        } catch (RejectedException) {
            self::assertSame([], $fallback->sent, 'a bad message is not retried elsewhere');
        }

        $primary = new ScriptedPublisher(new TransportException('nats down'));
        $fallback = new ScriptedPublisher(new TransportException('gateway 503'));
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('nats down; fallback: gateway 503');
        (new FailoverPublisher($primary, $fallback))->publish(self::message());
    }
}
