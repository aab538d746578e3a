<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use Ledger\SageSync\Block\Adminhtml\System\Config\Pairing as PairingPanel;
use Ledger\SageSync\Console\Command\PairingDisconnect;
use Ledger\SageSync\Console\Command\PairingPoll;
use Ledger\SageSync\Console\Command\PairingStart;
use Ledger\SageSync\Console\Command\PairingStatus;
use Ledger\SageSync\Controller\Adminhtml\Pairing\Check;
use Ledger\SageSync\Controller\Adminhtml\Pairing\Disconnect;
use Ledger\SageSync\Controller\Adminhtml\Pairing\Start;
use Ledger\SageSync\Core\Pairing\PairingClient;
use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Cron\PollPairing;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Pairing\ConfigPairingStore;
use Ledger\SageSync\Model\Pairing\PairingService;
use Ledger\SageSync\Model\Status\ConfiguredStatusFeed;
use Ledger\SageSync\Test\Support\ArrayConfig;
use Ledger\SageSync\Test\Support\ArrayLogger;
use Ledger\SageSync\Test\Support\Console;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\ScriptedHttp;
use Magento\Backend\App\Action\Context as ActionContext;
use Magento\Backend\Block\Template\Context;
use Magento\Framework\App\RequestInterface;
use Magento\Framework\Controller\Result\JsonFactory;
use Magento\Framework\Data\Form\Element\AbstractElement;
use Magento\Framework\Lock\LockManagerInterface;
use PHPUnit\Framework\TestCase;

/**
 * Pairing wired as Magento's DI would: core_config_data (ArrayConfig as scope config, writer and
 * encryptor), the admin controllers, the configuration panel, the CLI and cron.
 */
final class PairingGlueTest extends TestCase
{
    private const XSS = '<script>alert(1)</script>';

    private ArrayConfig $settings;
    private Config $config;
    private ConfigPairingStore $store;
    private ScriptedHttp $http;
    private FixedClock $clock;
    private ArrayLogger $logger;
    private bool $locked = false;
    private PairingService $service;

    protected function setUp(): void
    {
        $this->settings = new ArrayConfig([
            'web/secure/base_url' => 'https://shop.example/',
            'general/store_information/name' => 'Hartley Goods',
        ]);
        $this->config = new Config($this->settings, $this->settings);
        $this->store = new ConfigPairingStore($this->settings, $this->settings, $this->settings);
        $this->http = new ScriptedHttp();
        $this->clock = new FixedClock('2026-11-27 09:30:00');
        $this->logger = new ArrayLogger();
        $locks = $this->createMock(LockManagerInterface::class);
        $locks->method('lock')->willReturnCallback(fn (): bool => !$this->locked);
        $locks->method('unlock')->willReturn(true);
        $this->service = new PairingService(
            $this->config,
            $this->store,
            new PairingClient($this->http, $this->http),
            $this->clock,
            $locks,
            $this->logger
        );
    }

    private function issue(): void
    {
        $this->http->answer(201, [
            'pairing_id' => 'pr_77aa', 'code' => 'ABCD-EFGH', 'poll_secret' => 'p0ll5ecret',
            'expires_at' => '2026-11-27T10:00:00Z', 'poll_interval_seconds' => 5,
        ]);
    }

    private function deliver(string $merchant = 'hartley-goods'): void
    {
        $this->http->answer(200, [
            'state' => 'paired', 'merchant_id' => $merchant,
            'credentials' => ['key_id' => 'mk_51de', 'secret' => 'k3ys3cret'],
            'nats' => ['urls' => ['nats://nats.ledger.example:4222'], 'inbox_prefix' => '_INBOX.' . $merchant],
            'gateway_url' => 'https://ingest.ledger.example',
        ]);
    }

    private function pair(): void
    {
        $this->issue();
        $this->service->start();
        $this->deliver();
        $this->service->check();
    }

    private function request(array $params = []): RequestInterface
    {
        $request = $this->createMock(RequestInterface::class);
        $request->method('getParam')->willReturnCallback(static fn ($key) => $params[$key] ?? null);
        return $request;
    }

    private function panel(): string
    {
        $panel = new PairingPanel(new Context(), $this->service, $this->config);
        return $panel->render(new AbstractElement());
    }

    public function testStartUsesTheConfiguredGatewayAndStoresTheCodeWithTheSecretEncrypted(): void
    {
        $this->issue();
        $state = $this->service->start();
        self::assertSame('ABCD-EFGH', $state->pending->code);
        self::assertSame('https://ledger.example.com/v1/pairings', $this->http->requests[0][0], 'config.xml default');
        self::assertSame(
            ['store_url' => 'https://shop.example/', 'store_name' => 'Hartley Goods', 'module_version' => '0.2.0'],
            json_decode((string) $this->http->sent[0][1], true)
        );
        $stored = $this->settings->values[ConfigPairingStore::POLL_SECRET];
        self::assertStringNotContainsString('p0ll5ecret', $stored);
        self::assertSame('p0ll5ecret', $this->settings->decrypt($stored));
        self::assertStringNotContainsString('p0ll5ecret', $this->settings->values[ConfigPairingStore::PENDING]);
        self::assertGreaterThan(0, $this->settings->reinits, 'config cache refreshed after writing');
        self::assertStringContainsString('pairing code ABCD-EFGH requested', $this->logger->lines[0][1]);
    }

    public function testPairedCredentialsWinOverTheHandTypedOverride(): void
    {
        $this->settings->values['ledger_sage_sync/general/merchant_id'] = 'typed-by-hand';
        $this->settings->values['ledger_sage_sync/nats/url'] = 'tls://old.example:4443';
        $this->settings->values['ledger_sage_sync/nats/user'] = 'old-user';
        $this->settings->values['ledger_sage_sync/nats/password'] = $this->settings->encrypt('old-pw');
        $this->settings->values['ledger_sage_sync/https/url'] = 'https://old-gateway.example';
        $this->settings->values['ledger_sage_sync/https/ingest_key'] = $this->settings->encrypt('old-key');
        self::assertSame('typed-by-hand', $this->config->merchantId(), 'override while not paired');
        self::assertSame('old-user', $this->config->natsOptions()->user);

        $this->pair();
        self::assertTrue($this->config->isPaired());
        self::assertSame('hartley-goods', $this->config->merchantId());
        $nats = $this->config->natsOptions();
        self::assertSame('nats.ledger.example', $nats->host);
        self::assertFalse($nats->tls);
        self::assertSame('mk_51de', $nats->user, 'NATS user = key id');
        self::assertSame('k3ys3cret', $nats->password, 'NATS password = secret');
        self::assertNull($nats->token);
        self::assertSame('_INBOX.hartley-goods', $nats->inboxPrefix);
        self::assertSame('https://ingest.ledger.example', $this->config->httpsUrl());
        self::assertSame('k3ys3cret', $this->config->httpsKey());
        self::assertSame([], $this->config->problems());
        self::assertSame('k3ys3cret', $this->settings->decrypt($this->settings->values[ConfigPairingStore::SECRET]));
        self::assertStringNotContainsString('k3ys3cret', $this->settings->values[ConfigPairingStore::CREDENTIALS]);
        $logged = $this->logger->lines[1][1];
        self::assertStringContainsString('paired as merchant hartley-goods with key mk_51de', $logged);
    }

    public function testStatusFeedUsesThePairedSecret(): void
    {
        $this->pair();
        $this->http->answer(200, ['items' => [], 'next_cursor' => 0, 'more' => false]);
        (new ConfiguredStatusFeed($this->config, $this->http))->fetch('0', 10);
        [$url, $headers] = $this->http->requests[2];
        self::assertStringStartsWith('https://ingest.ledger.example/v1/status?', $url);
        self::assertSame('Bearer k3ys3cret', $headers['Authorization']);
    }

    public function testDisconnectForgetsEverythingAndPublishingStops(): void
    {
        $this->pair();
        $this->http->answer(200, ['revoked' => true, 'key_id' => 'mk_51de']);
        $this->service->disconnect();
        self::assertSame('https://ingest.ledger.example/v1/credentials/revoke', $this->http->requests[2][0]);
        self::assertSame('Bearer k3ys3cret', $this->http->requests[2][1]['Authorization']);
        foreach ([ConfigPairingStore::CREDENTIALS, ConfigPairingStore::SECRET, ConfigPairingStore::PENDING] as $path) {
            self::assertArrayNotHasKey($path, $this->settings->values);
        }
        self::assertFalse($this->config->isPaired());
        self::assertSame('', $this->config->merchantId(), 'the merchant id is forgotten too');
        self::assertStringStartsWith('Not paired with Ledger', $this->config->problems()[0]);
        self::assertStringContainsString('Not paired with Ledger', $this->panel());
    }

    public function testControllersAnswerJsonWithoutSecrets(): void
    {
        $json = new JsonFactory();
        $this->issue();
        $start = (new Start(new ActionContext($this->request()), $this->service, $json))->execute();
        self::assertTrue($start->data['ok']);
        self::assertSame('pending', $start->data['state']);
        self::assertSame('ABCD-EFGH', $start->data['code']);

        $this->http->answer(200, ['state' => 'pending']);
        $check = (new Check(new ActionContext($this->request()), $this->service, $json))->execute();
        self::assertSame('pending', $check->data['state']);
        $this->deliver();
        $check = (new Check(new ActionContext($this->request()), $this->service, $json))->execute();
        self::assertSame('paired', $check->data['state']);
        self::assertSame('hartley-goods', $check->data['merchant_id']);
        self::assertSame('mk_51de', $check->data['key_id']);
        foreach ([$start, $check] as $result) {
            $text = (string) json_encode($result->data);
            self::assertStringNotContainsString('p0ll5ecret', $text);
            self::assertStringNotContainsString('k3ys3cret', $text);
        }

        $this->http->timeout();
        $failed = (new Disconnect(new ActionContext($this->request()), $this->service, $json))->execute();
        self::assertFalse($failed->data['ok']);
        self::assertStringContainsString('no HTTP answer', $failed->data['error']);
        self::assertSame('paired', $failed->data['state'], 'still paired while the key cannot be revoked');
        $this->http->timeout();
        $forced = (new Disconnect(new ActionContext($this->request(['force' => '1'])), $this->service, $json))
            ->execute();
        self::assertTrue($forced->data['ok']);
        self::assertSame('not_paired', $forced->data['state']);
    }

    public function testControllersReportGatewayRefusals(): void
    {
        $this->http->answer(503, ['error' => 'unavailable', 'message' => 'try later']);
        $result = (new Start(new ActionContext($this->request()), $this->service, new JsonFactory()))->execute();
        self::assertFalse($result->data['ok']);
        self::assertStringContainsString('HTTP 503 unavailable: try later', $result->data['error']);
        self::assertSame('not_paired', $result->data['state']);
    }

    public function testPanelShowsEachStateEscaped(): void
    {
        $html = $this->panel();
        self::assertStringContainsString('Not paired with Ledger.', $html);
        self::assertStringContainsString('data-role="pairing-start"', $html);
        self::assertStringContainsString('Gateway: https://ledger.example.com', $html);
        preg_match('/data-mage-init="([^"]*)"/', $html, $m);
        $widget = json_decode(html_entity_decode($m[1], ENT_QUOTES), true)['Ledger_SageSync/js/pairing'];
        self::assertSame('F0rmK3y', $widget['formKey']);
        self::assertStringContainsString('/admin/ledger_sage_sync/pairing/start/', $widget['startUrl']);
        self::assertStringContainsString('/admin/ledger_sage_sync/pairing/check/', $widget['checkUrl']);
        self::assertStringContainsString('/admin/ledger_sage_sync/pairing/disconnect/', $widget['disconnectUrl']);

        $this->http->answer(201, [
            'pairing_id' => 'pr_1', 'code' => self::XSS, 'poll_secret' => 'p', 'expires_at' => '2026-11-27T10:00:00Z',
        ]);
        $this->service->start();
        $html = $this->panel();
        self::assertStringContainsString('&lt;script&gt;alert(1)&lt;/script&gt;', $html);
        self::assertStringContainsString('is valid until 2026-11-27 10:00 UTC', $html);
        self::assertStringContainsString('data-role="pairing-check"', $html);
        self::assertStringNotContainsString('<script>', $html);

        $this->http->answer(410, ['error' => 'pairing_expired', 'message' => self::XSS]);
        $this->service->check();
        $html = $this->panel();
        self::assertStringContainsString('Pairing failed: &lt;script&gt;', $html);
        self::assertStringNotContainsString('<script>', $html);

        $this->pair();
        $html = $this->panel();
        self::assertStringContainsString('as merchant hartley-goods with key mk_51de.', $html);
        self::assertStringContainsString('data-role="pairing-disconnect"', $html);
        self::assertStringNotContainsString('data-role="pairing-start"', $html);
        self::assertStringNotContainsString('k3ys3cret', $html);
    }

    public function testPanelNamesTheHandTypedOverride(): void
    {
        $this->settings->values['ledger_sage_sync/general/merchant_id'] = 'typed-by-hand';
        self::assertStringContainsString('advanced override', $this->panel());
    }

    public function testCommands(): void
    {
        $start = new PairingStart($this->service);
        $poll = new PairingPoll($this->service, static function (int $seconds): void {
        });
        $status = new PairingStatus($this->service, $this->config);
        $disconnect = new PairingDisconnect($this->service);
        self::assertSame(
            ['ledger:pairing:start', 'ledger:pairing:poll', 'ledger:pairing:status', 'ledger:pairing:disconnect'],
            [$start->getName(), $poll->getName(), $status->getName(), $disconnect->getName()]
        );

        $console = new Console();
        self::assertSame(1, $status->run($console, $console));
        self::assertStringContainsString('Not paired with Ledger.', $console->output);

        $this->issue();
        $console = new Console();
        self::assertSame(0, $start->run($console, $console));
        self::assertStringStartsWith("ABCD-EFGH\n", $console->output);

        $this->http->answer(200, ['state' => 'pending']);
        $this->deliver();
        $console = new Console(['wait' => '30']);
        self::assertSame(0, $poll->run($console, $console));
        $said = 'Paired with Ledger as merchant hartley-goods with key mk_51de';
        self::assertStringContainsString($said, $console->output);

        $console = new Console();
        self::assertSame(0, $status->run($console, $console));
        self::assertStringContainsString('NATS: nats://nats.ledger.example:4222', $console->output);
        self::assertStringContainsString('Gateway: https://ingest.ledger.example', $console->output);
        self::assertStringNotContainsString('k3ys3cret', $console->output);

        $this->http->timeout();
        $console = new Console();
        self::assertSame(1, $disconnect->run($console, $console));
        self::assertStringContainsString('--force', $console->output);
        $this->http->answer(401, ['error' => 'unauthorized']);
        $console = new Console();
        self::assertSame(0, $disconnect->run($console, $console));
        self::assertStringContainsString('Disconnected from Ledger', $console->output);
        self::assertFalse($this->config->isPaired());
    }

    public function testCronPollsOnlyWhileACodeWaitsAndKeepsItThroughOutages(): void
    {
        $cron = new PollPairing($this->service, $this->logger);
        $cron->execute();
        self::assertSame([], $this->http->requests, 'nothing to poll');

        $this->issue();
        $this->service->start();
        $this->http->timeout();
        $cron->execute();
        self::assertSame('pending', $this->service->state()->state);
        self::assertSame('warning', $this->logger->lines[1][0]);
        self::assertStringContainsString('still waiting', $this->logger->lines[1][1]);

        $this->locked = true;
        $cron->execute();
        self::assertCount(2, $this->http->requests, 'another poller holds the lock: no request');
        $this->locked = false;

        $this->clock->advance(31 * 60);
        $cron->execute();
        self::assertSame(PairingState::NOT_PAIRED, $this->service->state()->state);
        self::assertStringContainsString('ABCD-EFGH expired', (string) $this->service->state()->message);
        self::assertCount(2, $this->http->requests, 'an expired code is not polled');
    }
}
