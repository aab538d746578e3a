<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use DOMDocument;
use DOMXPath;
use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Core\Http\HttpsPublisher;
use Ledger\SageSync\Core\Http\HttpTransport;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Http\MagentoHttpTransport;
use Ledger\SageSync\Model\Outbox\PublisherFactory;
use Ledger\SageSync\Test\Support\ArrayConfig;
use Magento\Framework\HTTP\Client\Curl;
use Magento\Framework\HTTP\Client\CurlFactory;
use PHPUnit\Framework\TestCase;

/**
 * The gateway is reached with Magento's own HTTP client (works where allow_url_fopen is off):
 * pairing, the status feed and the HTTPS fallback all go through it.
 */
final class MagentoHttpTransportTest extends TestCase
{
    protected function setUp(): void
    {
        Curl::$created = [];
        Curl::$next = [200, ''];
    }

    public function testPostSendsBodyAndHeadersWithTimeoutsTlsChecksAndNoRedirects(): void
    {
        Curl::$next = [202, '{"accepted":true}'];
        $transport = new MagentoHttpTransport(new CurlFactory());
        $answer = $transport->post(
            'https://ingest.ledger.example/v1/events',
            ['Authorization' => 'Bearer ik_live', 'Content-Type' => 'application/json'],
            '{"event_id":"e1"}',
            2.5
        );
        self::assertSame(202, $answer->status);
        self::assertSame('{"accepted":true}', $answer->body);
        $client = Curl::$created[0];
        self::assertSame([['POST', 'https://ingest.ledger.example/v1/events', '{"event_id":"e1"}']], $client->requests);
        self::assertSame('Bearer ik_live', $client->headers['Authorization']);
        self::assertSame('', $client->headers['Expect'], 'no 100-continue line before the status');
        self::assertSame(2500, $client->options[CURLOPT_TIMEOUT_MS]);
        self::assertSame(2500, $client->options[CURLOPT_CONNECTTIMEOUT_MS]);
        self::assertFalse($client->options[CURLOPT_FOLLOWLOCATION]);
        self::assertTrue($client->options[CURLOPT_SSL_VERIFYPEER]);
        self::assertSame(2, $client->options[CURLOPT_SSL_VERIFYHOST]);
        self::assertSame(CURLPROTO_HTTP | CURLPROTO_HTTPS, $client->options[CURLOPT_PROTOCOLS]);
    }

    public function testEachRequestHasItsOwnClient(): void
    {
        $transport = new MagentoHttpTransport(new CurlFactory());
        $transport->post('https://gw.example/v1/pairings', ['X-One' => '1'], '{}', 5.0);
        Curl::$next = [401, '{"error":"unauthorized"}'];
        $answer = $transport->get('https://gw.example/v1/status?cursor=0', ['Authorization' => 'Bearer k'], 5.0);
        self::assertSame(401, $answer->status);
        self::assertCount(2, Curl::$created);
        self::assertSame([['GET', 'https://gw.example/v1/status?cursor=0', null]], Curl::$created[1]->requests);
        self::assertArrayNotHasKey('X-One', Curl::$created[1]->headers);
    }

    public function testNoAnswerIsATransportErrorNamingTheOriginOnly(): void
    {
        Curl::$next = new \Exception('Failed to connect to gw.example port 8443: Connection refused');
        $transport = new MagentoHttpTransport(new CurlFactory());
        try {
            $transport->get('https://gw.example:8443/v1/status?cursor=secret-cursor', [], 1.0);
            self::fail('no exception');
        } catch (TransportException $e) {
            self::assertStringStartsWith('no HTTP answer from https://gw.example:8443: ', $e->getMessage());
            self::assertStringContainsString('Connection refused', $e->getMessage());
            self::assertStringNotContainsString('secret-cursor', $e->getMessage());
        }
    }

    public function testHeaderInjectionIsRefusedBeforeAnythingIsSent(): void
    {
        $transport = new MagentoHttpTransport(new CurlFactory());
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('invalid HTTP header Authorization');
        try {
            $transport->post('https://gw.example/v1/events', ['Authorization' => "Bearer k\r\nX-Evil: 1"], '{}', 1.0);
        } finally {
            self::assertSame([], Curl::$created);
        }
    }

    public function testMagentoWiresItForPairingStatusAndTheHttpsFallback(): void
    {
        $dom = new DOMDocument();
        $dom->load(dirname(__DIR__, 3) . '/etc/di.xml');
        $di = new DOMXPath($dom);
        foreach ([HttpTransport::class, HttpReader::class] as $for) {
            self::assertSame(
                MagentoHttpTransport::class,
                $di->evaluate('string(//preference[@for="' . $for . '"]/@type)'),
                $for
            );
        }
        // The HTTPS publisher the configuration builds posts through the injected transport.
        $settings = new ArrayConfig();
        $settings->values['ledger_sage_sync/general/merchant_id'] = 'hartley-goods';
        $settings->values['ledger_sage_sync/general/transport'] = 'https';
        $settings->values['ledger_sage_sync/https/url'] = 'https://ingest.ledger.example';
        $settings->values['ledger_sage_sync/https/ingest_key'] = $settings->encrypt('ik_live');
        Curl::$next = [202, '{}'];
        $transport = new MagentoHttpTransport(new CurlFactory());
        $factory = new PublisherFactory(new Config($settings, $settings), $transport);
        $publisher = $factory->create();
        self::assertInstanceOf(HttpsPublisher::class, $publisher);
        $subject = 'magento.hartley-goods.invoice.created';
        $publisher->publish(new OutboundMessage('e1', $subject, '{"event_id":"e1"}', []));
        self::assertCount(1, Curl::$created);
        self::assertSame('https://ingest.ledger.example/v1/events', Curl::$created[0]->requests[0][1]);
    }
}
