<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use Ledger\SageSync\Core\Pairing\InMemoryPairingStore;
use Ledger\SageSync\Core\Pairing\Pairing;
use Ledger\SageSync\Core\Pairing\PairingClient;
use Ledger\SageSync\Core\Pairing\PairingException;
use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\ScriptedHttp;
use PHPUnit\Framework\TestCase;

/** Pairing against a scripted gateway: the HTTP contract of /v1/pairings and /v1/credentials/revoke. */
final class PairingTest extends TestCase
{
    private const GATEWAY = 'https://gateway.ledger.example';

    private ScriptedHttp $http;
    private InMemoryPairingStore $store;
    private FixedClock $clock;
    private Pairing $pairing;

    protected function setUp(): void
    {
        $this->http = new ScriptedHttp();
        $this->store = new InMemoryPairingStore();
        $this->clock = new FixedClock('2026-11-27 09:30:00');
        $this->pairing = new Pairing(new PairingClient($this->http, $this->http, 7.0), $this->store, $this->clock);
    }

    private function issued(): array
    {
        return [
            'pairing_id' => 'pr_5f1c0ab2',
            'code' => 'ABCD-EFGH',
            'poll_secret' => '9a8b7c6d5e4f',
            'expires_at' => '2026-11-27T10:00:00Z',
            'poll_interval_seconds' => 5,
        ];
    }

    private function paired(): array
    {
        return [
            'state' => 'paired',
            'merchant_id' => 'hartley-goods',
            'credentials' => ['key_id' => 'mk_0c1d2e', 'secret' => '5ec2e7aa'],
            'nats' => ['urls' => ['nats://nats.ledger.example:4222'], 'inbox_prefix' => '_INBOX.hartley-goods'],
            'gateway_url' => 'https://ingest.ledger.example/',
        ];
    }

    private function started(): void
    {
        $this->http->answer(201, $this->issued());
        $this->pairing->start(self::GATEWAY . '/', [
            'store_url' => 'https://shop.example/',
            'store_name' => 'Hartley Goods',
            'module_version' => '0.1.0',
        ]);
    }

    public function testStartStoresTheCodeAndSendsTheStoreDetails(): void
    {
        $this->http->answer(201, $this->issued());
        $about = ['store_url' => 'https://shop.example/', 'store_name' => ''];
        $state = $this->pairing->start(self::GATEWAY . '/', $about);
        self::assertSame(PairingState::PENDING, $state->state);
        self::assertSame('ABCD-EFGH', $state->pending->code);
        self::assertSame('2026-11-27T10:00:00+00:00', $state->toArray()['expires_at']);
        self::assertSame('9a8b7c6d5e4f', $this->store->pending()->pollSecret);
        self::assertSame(self::GATEWAY . '/v1/pairings', $this->http->requests[0][0]);
        self::assertSame('POST', $this->http->sent[0][0]);
        self::assertSame(['store_url' => 'https://shop.example/'], json_decode($this->http->sent[0][1], true));
        self::assertSame(7.0, $this->http->requests[0][2]);
        self::assertArrayNotHasKey('poll_secret', $state->toArray());
    }

    public function testPendingThenPairedStoresTheCredentialsOnce(): void
    {
        $this->started();
        $this->http->answer(200, ['state' => 'pending', 'expires_at' => '2026-11-27T10:00:00Z']);
        self::assertSame(PairingState::PENDING, $this->pairing->check()->state);

        $this->http->answer(200, $this->paired());
        $state = $this->pairing->check();
        self::assertSame(PairingState::PAIRED, $state->state);
        $credentials = $this->store->credentials();
        self::assertSame('hartley-goods', $credentials->merchantId);
        self::assertSame('mk_0c1d2e', $credentials->keyId);
        self::assertSame('5ec2e7aa', $credentials->secret);
        self::assertSame(['nats://nats.ledger.example:4222'], $credentials->natsUrls);
        self::assertSame('_INBOX.hartley-goods', $credentials->inboxPrefix);
        self::assertSame('https://ingest.ledger.example', $credentials->gatewayUrl);
        self::assertNull($this->store->pending(), 'the pending pairing is cleared');

        foreach ([1, 2] as $poll) {
            [$url, $headers] = $this->http->requests[$poll];
            self::assertSame(self::GATEWAY . '/v1/pairings/pr_5f1c0ab2', $url);
            self::assertSame('Bearer 9a8b7c6d5e4f', $headers['Authorization'], 'the poll secret is the bearer');
            self::assertSame('GET', $this->http->sent[$poll][0]);
        }

        self::assertSame(PairingState::PAIRED, $this->pairing->check()->state, 'no further poll once paired');
        self::assertCount(3, $this->http->requests);
    }

    public function testExpiredAndConsumedCodesAreCleared(): void
    {
        foreach (['pairing_expired' => 'The code expired.', 'pairing_consumed' => 'The code was used.'] as $e => $m) {
            $this->started();
            $this->http->answer(410, ['error' => $e, 'message' => $m]);
            $state = $this->pairing->check();
            self::assertSame(PairingState::NOT_PAIRED, $state->state, $e);
            self::assertNull($this->store->pending());
            self::assertSame('Pairing failed: ' . $m, $state->message);
        }
    }

    public function testUnknownOrRefusedPairingIsCleared(): void
    {
        foreach ([401, 404] as $status) {
            $this->started();
            $this->http->answer($status, '');
            $state = $this->pairing->check();
            self::assertSame(PairingState::NOT_PAIRED, $state->state);
            self::assertStringStartsWith('Pairing failed: The gateway', (string) $state->message);
        }
    }

    public function testNetworkErrorsAndOutagesKeepWaiting(): void
    {
        $this->started();
        $this->http->timeout();
        $state = $this->pairing->check();
        self::assertSame(PairingState::PENDING, $state->state);
        self::assertStringContainsString('still waiting', (string) $state->warning);
        $this->http->answer(503, ['error' => 'unavailable']);
        self::assertSame(PairingState::PENDING, $this->pairing->check()->state);
        self::assertNotNull($this->store->pending());
    }

    public function testCodeExpiryIsHandledLocallyWithoutPolling(): void
    {
        $this->started();
        $this->clock->advance(29 * 60);
        self::assertSame(PairingState::PENDING, $this->pairing->state()->state);
        $this->clock->advance(60);
        self::assertSame(PairingState::NOT_PAIRED, $this->pairing->state()->state, 'shown as expired at once');
        $state = $this->pairing->check();
        self::assertStringContainsString('ABCD-EFGH expired', (string) $state->message);
        self::assertNull($this->store->pending());
        self::assertCount(1, $this->http->requests, 'only the start, no poll');
    }

    public function testMissingExpiryMeansThirtyMinutes(): void
    {
        $issued = $this->issued();
        unset($issued['expires_at']);
        $this->http->answer(201, $issued);
        $state = $this->pairing->start(self::GATEWAY);
        self::assertSame('2026-11-27T10:00:00+00:00', $state->toArray()['expires_at']);
    }

    public function testStartRefusals(): void
    {
        $this->http->answer(400, ['error' => 'bad_request', 'message' => 'store_url is not a URL']);
        try {
            $this->pairing->start(self::GATEWAY);
            self::fail('expected a refusal');
        } catch (PairingException $e) {
            self::assertStringContainsString('HTTP 400 bad_request: store_url is not a URL', $e->getMessage());
        }
        $this->http->answer(201, ['code' => 'ABCD-EFGH']);
        try {
            $this->pairing->start(self::GATEWAY);
            self::fail('expected a refusal');
        } catch (PairingException $e) {
            self::assertStringContainsString('not a pairing code', $e->getMessage());
        }
        $this->http->answer(502, '');
        $this->expectException(TransportException::class);
        $this->pairing->start(self::GATEWAY);
    }

    public function testGatewayMustBeHttps(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        $this->pairing->start('http://gateway.ledger.example');
    }

    public function testAlreadyPairedCannotStartAgain(): void
    {
        $this->started();
        $this->http->answer(200, $this->paired());
        $this->pairing->check();
        $this->expectException(PairingException::class);
        $this->expectExceptionMessage('disconnect it first');
        $this->pairing->start(self::GATEWAY);
    }

    public function testInvalidPairedAnswerFails(): void
    {
        $this->started();
        $answer = $this->paired();
        $answer['merchant_id'] = 'Hartley Goods!';
        $this->http->answer(200, $answer);
        $state = $this->pairing->check();
        self::assertSame(PairingState::NOT_PAIRED, $state->state);
        self::assertStringContainsString('invalid merchant id', (string) $state->message);
    }

    public function testMissingNatsDetailsFallBack(): void
    {
        $this->started();
        $answer = $this->paired();
        unset($answer['nats'], $answer['gateway_url']);
        $this->http->answer(200, $answer);
        $this->pairing->check();
        $credentials = $this->store->credentials();
        self::assertSame([], $credentials->natsUrls);
        self::assertSame('_INBOX.hartley-goods', $credentials->inboxPrefix);
        self::assertSame(self::GATEWAY, $credentials->gatewayUrl, 'the gateway the pairing was started with');
    }

    public function testDisconnectRevokesAndForgets(): void
    {
        $this->started();
        $this->http->answer(200, $this->paired());
        $this->pairing->check();
        $this->http->answer(200, ['revoked' => true, 'key_id' => 'mk_0c1d2e']);
        $state = $this->pairing->disconnect();
        self::assertSame(PairingState::NOT_PAIRED, $state->state);
        self::assertNull($this->store->credentials());
        $said = 'Disconnected from Ledger (merchant hartley-goods, key mk_0c1d2e)';
        self::assertStringContainsString($said, (string) $state->message);
        [$url, $headers] = $this->http->requests[2];
        self::assertSame('https://ingest.ledger.example/v1/credentials/revoke', $url);
        self::assertSame('Bearer 5ec2e7aa', $headers['Authorization']);
        self::assertSame('POST', $this->http->sent[2][0]);
    }

    public function testDisconnectOfAnAlreadyRevokedKeyIsDone(): void
    {
        $this->started();
        $this->http->answer(200, $this->paired());
        $this->pairing->check();
        $this->http->answer(401, ['error' => 'unauthorized']);
        self::assertSame(PairingState::NOT_PAIRED, $this->pairing->disconnect()->state);
        self::assertNull($this->store->credentials());
    }

    public function testDisconnectKeepsTheKeyWhenTheGatewayIsDownUnlessForced(): void
    {
        $this->started();
        $this->http->answer(200, $this->paired());
        $this->pairing->check();
        $this->http->timeout();
        try {
            $this->pairing->disconnect();
            self::fail('expected the transport error');
        } catch (TransportException) {
            self::assertNotNull($this->store->credentials(), 'still paired: the key is still valid');
        }
        $this->http->timeout();
        $state = $this->pairing->disconnect(true);
        self::assertNull($this->store->credentials());
        self::assertStringContainsString('revoke it on the Ledger side', (string) $state->message);
    }
}
