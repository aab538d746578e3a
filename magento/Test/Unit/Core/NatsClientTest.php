<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use Ledger\SageSync\Core\Nats\NatsClient;
use Ledger\SageSync\Core\Nats\NatsOptions;
use Ledger\SageSync\Core\Nats\NatsServerException;
use Ledger\SageSync\Core\Nats\NatsPublisher;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\PublishException;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Publish\TransportException;
use PHPUnit\Framework\TestCase;

/**
 * The client against a scripted "server": the test end of a socket pair holds the server's lines,
 * written before the client reads them, and afterwards shows exactly what the client sent.
 */
final class NatsClientTest extends TestCase
{
    /** @var resource */
    private $server;

    /** @var resource */
    private $clientEnd;

    private const INFO = 'INFO {"server_id":"TEST","version":"2.10.0","proto":1,"headers":true,"max_payload":4096,'
        . '"jetstream":true,"auth_required":true}';

    protected function setUp(): void
    {
        [$this->clientEnd, $this->server] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
    }

    protected function tearDown(): void
    {
        foreach ([$this->server, $this->clientEnd] as $end) {
            if (is_resource($end)) {
                fclose($end);
            }
        }
    }

    private function client(NatsOptions $options): NatsClient
    {
        $socket = $this->clientEnd;
        return new NatsClient($options, static fn () => $socket, static fn (): string => 'T0K3N');
    }

    private function serverSays(string ...$lines): void
    {
        fwrite($this->server, implode('', array_map(static fn (string $l): string => $l . "\r\n", $lines)));
    }

    private function clientSent(): string
    {
        stream_set_blocking($this->server, false);
        $data = (string) stream_get_contents($this->server);
        stream_set_blocking($this->server, true);
        return $data;
    }

    private static function hmsg(string $subject, string $headerBlock, string $body): string
    {
        return 'HMSG ' . $subject . ' 1 ' . strlen($headerBlock) . ' ' . (strlen($headerBlock) + strlen($body))
            . "\r\n" . $headerBlock . $body;
    }

    public function testConnectSendsCredentialsAndWaitsForPong(): void
    {
        $this->serverSays(self::INFO, '+OK', 'PONG');
        $client = $this->client(new NatsOptions(user: 'magento', password: 's3cret'));
        $client->connect();
        $sent = $this->clientSent();
        self::assertMatchesRegularExpression('/^CONNECT (\{.*\})\r\nPING\r\n$/', $sent);
        preg_match('/^CONNECT (\{.*\})\r\n/', $sent, $m);
        $connect = json_decode($m[1], true);
        self::assertSame('magento', $connect['user']);
        self::assertSame('s3cret', $connect['pass']);
        self::assertTrue($connect['headers']);
        self::assertTrue($connect['no_responders']);
        self::assertFalse($connect['verbose']);
        self::assertArrayNotHasKey('auth_token', $connect);
        self::assertSame(4096, $client->serverInfo()['max_payload']);
    }

    public function testTokenAuthentication(): void
    {
        $this->serverSays(self::INFO, 'PONG');
        $this->client(NatsOptions::fromUrl('nats://tok-123@127.0.0.1:4222'))->connect();
        $connect = json_decode(substr(explode("\r\n", $this->clientSent())[0], 8), true);
        self::assertSame('tok-123', $connect['auth_token']);
        self::assertArrayNotHasKey('user', $connect);
    }

    public function testAuthorizationViolationIsATransportError(): void
    {
        $this->serverSays(self::INFO, "-ERR 'Authorization Violation'");
        $client = $this->client(new NatsOptions(user: 'magento', password: 'wrong'));
        try {
            $client->connect();
            self::fail('expected an exception');
        } catch (TransportException $e) {
            self::assertStringContainsString('Authorization Violation', $e->getMessage());
        }
        self::assertFalse($client->isConnected());
    }

    public function testServerWithoutHeadersIsRefused(): void
    {
        $this->serverSays('INFO {"server_id":"OLD","headers":false}');
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('headers');
        $this->client(new NatsOptions())->connect();
    }

    public function testHpubFrameAndPubAck(): void
    {
        $body = '{"event_id":"x"}';
        $this->serverSays(
            self::INFO,
            'PONG',
            'PING',
            'MSG _INBOX.T0K3N.99 1 2' . "\r\n" . 'no',
            self::hmsg('_INBOX.T0K3N.1', "NATS/1.0\r\n\r\n", '{"stream":"MAGENTO_EVENTS","seq":41}')
        );
        $client = $this->client(new NatsOptions());
        $ack = $client->jetStreamPublish('magento.acme.invoice.created', $body, [
            'Nats-Msg-Id' => 'e2a7c3f9-8b14-4d0e-9f6a-3c5b7d9e1f33',
            'traceparent' => '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        ]);
        self::assertSame('MAGENTO_EVENTS', $ack->stream);
        self::assertSame(41, $ack->sequence);
        self::assertFalse($ack->duplicate);
        self::assertSame('nats', $ack->transport);

        $headers = "NATS/1.0\r\nNats-Msg-Id: e2a7c3f9-8b14-4d0e-9f6a-3c5b7d9e1f33\r\n"
            . "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
        $expected = "SUB _INBOX.T0K3N.* 1\r\n"
            . 'HPUB magento.acme.invoice.created _INBOX.T0K3N.1 ' . strlen($headers) . ' '
            . (strlen($headers) + strlen($body)) . "\r\n" . $headers . $body . "\r\n"
            . "PONG\r\n";
        $sent = $this->clientSent();
        self::assertSame($expected, substr($sent, strpos($sent, "SUB ")), 'answers PING, ignores other replies');
    }

    public function testDuplicateFlag(): void
    {
        $this->serverSays(
            self::INFO,
            'PONG',
            self::hmsg('_INBOX.T0K3N.1', "NATS/1.0\r\n\r\n", '{"stream":"MAGENTO_EVENTS","seq":41,"duplicate":true}')
        );
        $ack = $this->client(new NatsOptions())->jetStreamPublish('magento.acme.invoice.paid', '{}', ['A' => 'b']);
        self::assertTrue($ack->duplicate);
        self::assertSame(41, $ack->sequence);
    }

    public function testNoRespondersMeansNoStream(): void
    {
        $this->serverSays(self::INFO, 'PONG', self::hmsg('_INBOX.T0K3N.1', "NATS/1.0 503\r\n\r\n", ''));
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('no JetStream stream');
        $this->client(new NatsOptions())->jetStreamPublish('magento.acme.invoice.paid', '{}', ['A' => 'b']);
    }

    public function testJetStreamErrorIsAPerMessageFailure(): void
    {
        $error = '{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}';
        $this->serverSays(self::INFO, 'PONG', 'MSG _INBOX.T0K3N.1 1 ' . strlen($error) . "\r\n" . $error);
        try {
            $this->client(new NatsOptions())->jetStreamPublish('magento.acme.invoice.paid', '{}');
            self::fail('expected an exception');
        } catch (TransportException $e) {
            self::fail('a JetStream error is not a transport error');
        } catch (PublishException $e) {
            self::assertSame('JetStream error 10060: expected stream does not match', $e->getMessage());
        }
    }

    public function testTimeoutWaitingForTheAck(): void
    {
        $this->serverSays(self::INFO, 'PONG');
        $client = $this->client(new NatsOptions(timeout: 0.2));
        $started = microtime(true);
        try {
            $client->jetStreamPublish('magento.acme.invoice.paid', '{}', ['A' => 'b']);
            self::fail('expected a timeout');
        } catch (TransportException $e) {
            self::assertStringContainsString('timed out', $e->getMessage());
        }
        self::assertLessThan(2.0, microtime(true) - $started);
    }

    public function testMessageLargerThanTheServerLimitIsRejected(): void
    {
        $this->serverSays(self::INFO, 'PONG');
        $this->expectException(RejectedException::class);
        $big = str_repeat('x', 5000);
        $this->client(new NatsOptions())->jetStreamPublish('magento.acme.invoice.paid', $big, ['A' => 'b']);
    }

    public function testHeaderInjectionIsRejected(): void
    {
        $this->serverSays(self::INFO, 'PONG');
        $this->expectException(RejectedException::class);
        $this->client(new NatsOptions())->jetStreamPublish('magento.acme.invoice.paid', '{}', ['A' => "b\r\nX: y"]);
    }

    public function testServerClosingTheConnection(): void
    {
        $this->serverSays(self::INFO, 'PONG');
        $client = $this->client(new NatsOptions());
        $client->connect();
        fclose($this->server);
        $this->expectException(TransportException::class);
        $client->jetStreamPublish('magento.acme.invoice.paid', '{}', ['A' => 'b']);
    }

    public function testUnreachableServer(): void
    {
        $publisher = NatsPublisher::withOptions(new NatsOptions(host: '127.0.0.1', port: 1, connectTimeout: 0.5));
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('cannot connect to NATS at 127.0.0.1:1');
        $publisher->publish(new OutboundMessage('id', 'magento.acme.invoice.paid', '{}', []));
    }

    public function testStatusHeaderParsing(): void
    {
        $block = "NATS/1.0 408 Request Timeout\r\nNats-Pending: 5\r\n\r\n";
        [$status, $text, $headers] = NatsClient::parseHeaders($block);
        self::assertSame(408, $status);
        self::assertSame('Request Timeout', $text);
        self::assertSame(['Nats-Pending' => ['5']], $headers);
    }

    public function testUrlParsing(): void
    {
        $options = NatsOptions::fromUrl('tls://magento:p%40ss@nats.ledger.example:4443', timeout: 4.0);
        self::assertTrue($options->tls);
        self::assertSame('nats.ledger.example', $options->host);
        self::assertSame(4443, $options->port);
        self::assertSame('magento', $options->user);
        self::assertSame('p@ss', $options->password);
        $explicit = NatsOptions::fromUrl('nats.ledger.example', 'shop', 'pw');
        self::assertSame(4222, $explicit->port);
        self::assertFalse($explicit->tls);
        self::assertSame('shop', $explicit->user);
        $this->expectException(\InvalidArgumentException::class);
        NatsOptions::fromUrl('http://nats.ledger.example');
    }

    public function testPublishPermissionViolationIsReportedAtOnceWithTheSubject(): void
    {
        $this->serverSays(
            self::INFO,
            'PONG',
            "-ERR 'Permissions Violation for Publish to \"magento.other-shop.invoice.created\"'"
        );
        $client = $this->client(new NatsOptions(user: 'mk_1f2e', password: 's', timeout: 5.0));
        $started = microtime(true);
        try {
            $client->jetStreamPublish('magento.other-shop.invoice.created', '{}', ['Nats-Msg-Id' => 'x']);
            self::fail('expected the refusal');
        } catch (NatsServerException $e) {
            self::assertInstanceOf(TransportException::class, $e, 'kept for later, not dead-lettered');
            self::assertSame(NatsServerException::PUBLISH_DENIED, $e->kind);
            self::assertSame('magento.other-shop.invoice.created', $e->subject);
            self::assertStringContainsString('"magento.other-shop.invoice.created"', $e->getMessage());
            self::assertStringContainsString('Permissions Violation for Publish', $e->getMessage());
            self::assertStringContainsString('mk_1f2e', $e->getMessage());
        }
        self::assertLessThan(1.0, microtime(true) - $started, 'not waiting for the timeout');
        self::assertFalse($client->isConnected());
    }

    public function testInboxOutsideTheAllowedPrefixIsExplained(): void
    {
        $this->serverSays(self::INFO, 'PONG', "-ERR 'Permissions Violation for Subscription to \"_INBOX.T0K3N.*\"'");
        try {
            $this->client(new NatsOptions())->jetStreamPublish('magento.acme.invoice.created', '{}', ['A' => 'b']);
            self::fail('expected the refusal');
        } catch (NatsServerException $e) {
            self::assertSame(NatsServerException::SUBSCRIBE_DENIED, $e->kind);
            self::assertSame('_INBOX.T0K3N.*', $e->subject);
            self::assertStringContainsString('inbox prefix', $e->getMessage());
        }
    }

    public function testInboxUsesThePairedPrefix(): void
    {
        $this->serverSays(
            self::INFO,
            'PONG',
            self::hmsg('_INBOX.hartley-goods.T0K3N.1', "NATS/1.0\r\n\r\n", '{"stream":"MAGENTO_EVENTS","seq":1}')
        );
        $options = new NatsOptions(user: 'mk_1', password: 's', inboxPrefix: '_INBOX.hartley-goods');
        $this->client($options)->jetStreamPublish('magento.hartley-goods.customer.saved', '{}', ['A' => 'b']);
        self::assertStringContainsString("SUB _INBOX.hartley-goods.T0K3N.* 1\r\n", $this->clientSent());
    }

    /** @return array<string, array{string, string, string}> */
    public static function authErrors(): array
    {
        return [
            'wrong credentials' => ['Authorization Violation', NatsServerException::AUTHORIZATION, 'refused'],
            'expired' => ['User Authentication Expired', NatsServerException::EXPIRED, 'expired'],
            'revoked' => ['Authentication Revoked', NatsServerException::REVOKED, 'revoked'],
        ];
    }

    /** @dataProvider authErrors */
    public function testAuthenticationErrorsAreClear(string $error, string $kind, string $word): void
    {
        $this->serverSays(self::INFO, 'PONG', "-ERR '" . $error . "'");
        $client = $this->client(new NatsOptions(user: 'mk_9a', password: 's'));
        try {
            $client->jetStreamPublish('magento.acme.invoice.created', '{}', ['A' => 'b']);
            self::fail('expected ' . $error);
        } catch (NatsServerException $e) {
            self::assertSame($kind, $e->kind);
            self::assertSame($error, $e->reason);
            self::assertStringContainsString($error, $e->getMessage());
            self::assertStringContainsString($word, $e->getMessage());
            self::assertStringContainsString('mk_9a', $e->getMessage());
        }
        self::assertFalse($client->isConnected());
    }

    public function testOtherServerErrorsKeepTheirText(): void
    {
        $this->serverSays(self::INFO, "-ERR 'Maximum Connections Exceeded'");
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('NATS server error: Maximum Connections Exceeded');
        $this->client(new NatsOptions())->connect();
    }
}
