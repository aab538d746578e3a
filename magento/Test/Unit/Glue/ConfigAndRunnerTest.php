<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Http\HttpsPublisher;
use Ledger\SageSync\Core\Nats\NatsPublisher;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\PayloadRebuilder;
use Ledger\SageSync\Core\Publish\FailoverPublisher;
use Ledger\SageSync\Cron\PublishOutbox;
use Ledger\SageSync\Cron\PullStatus;
use Ledger\SageSync\Core\Status\NullStatusFeed;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Config\Backend\MerchantId;
use Ledger\SageSync\Model\Outbox\PublisherFactory;
use Ledger\SageSync\Model\Outbox\RelayRunner;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\ArrayConfig;
use Ledger\SageSync\Test\Support\ArrayDocuments;
use Ledger\SageSync\Test\Support\Glue;
use Ledger\SageSync\Test\Support\Models;
use Ledger\SageSync\Test\Support\ScriptedHttp;
use Magento\Framework\Exception\LocalizedException;
use Magento\Framework\FlagManager;
use Magento\Framework\Lock\LockManagerInterface;
use PHPUnit\Framework\TestCase;
use RuntimeException;

final class ConfigAndRunnerTest extends TestCase
{
    private function ready(ArrayConfig $settings): void
    {
        $settings->values['ledger_sage_sync/general/merchant_id'] = 'hartley-goods';
        $settings->values['ledger_sage_sync/nats/url'] = 'tls://nats.ledger.example:4443';
        $settings->values['ledger_sage_sync/nats/user'] = 'hartley-goods';
        $settings->values['ledger_sage_sync/nats/password'] = $settings->encrypt('n4ts-pw');
    }

    public function testDefaultsAndDecryptedCredentials(): void
    {
        $settings = new ArrayConfig();
        $config = new Config($settings, $settings);
        self::assertTrue($config->isEnabled(), 'recording is on from install');
        self::assertSame(Config::TRANSPORT_NATS_HTTPS, $config->transport());
        self::assertSame(200, $config->batchSize());
        self::assertSame(12, $config->maxAttempts());
        self::assertTrue($config->flushAfterCommit());
        self::assertCount(1, $config->problems());
        self::assertStringStartsWith('Not paired with Ledger: generate a pairing code', $config->problems()[0]);

        $settings->values['ledger_sage_sync/general/merchant_id'] = 'hartley-goods';
        self::assertSame(['The NATS URL is not set.'], $config->problems(), 'hand-typed override, incomplete');

        $this->ready($settings);
        self::assertSame([], $config->problems());
        $options = $config->natsOptions();
        self::assertTrue($options->tls);
        self::assertSame('n4ts-pw', $options->password, 'decrypted');
        self::assertSame(5.0, $options->timeout);
        self::assertSame(2.0, $config->natsOptions(true)->timeout, 'short after an admin save');

        // A plain nats:// URL is a problem the admin sees, unless the development override is set.
        $settings->values['ledger_sage_sync/nats/url'] = 'nats://nats.ledger.example:4222';
        $saved = getenv('LEDGER_NATS_ALLOW_PLAIN');
        putenv('LEDGER_NATS_ALLOW_PLAIN');
        try {
            self::assertSame(
                ['The NATS URL must start with tls:// (the key\'s secret is sent when connecting).'],
                $config->problems()
            );
        } finally {
            putenv($saved === false ? 'LEDGER_NATS_ALLOW_PLAIN' : 'LEDGER_NATS_ALLOW_PLAIN=' . $saved);
        }
        self::assertSame([], $config->problems());
    }

    public function testPublisherFollowsTheTransportSetting(): void
    {
        $settings = new ArrayConfig();
        $this->ready($settings);
        $factory = new PublisherFactory(new Config($settings, $settings), new ScriptedHttp());
        self::assertInstanceOf(NatsPublisher::class, $factory->create(), 'no gateway configured: NATS only');
        $settings->values['ledger_sage_sync/https/url'] = 'https://ingest.ledger.example';
        $settings->values['ledger_sage_sync/https/ingest_key'] = $settings->encrypt('ik_live');
        self::assertInstanceOf(FailoverPublisher::class, $factory->create());
        $settings->values['ledger_sage_sync/general/transport'] = 'https';
        self::assertInstanceOf(HttpsPublisher::class, $factory->create());
        $settings->values['ledger_sage_sync/general/transport'] = 'nats';
        self::assertInstanceOf(NatsPublisher::class, $factory->create());
    }

    public function testMerchantIdIsValidatedBeforeSaving(): void
    {
        $value = new MerchantId(['value' => '  hartley-goods ']);
        $value->beforeSave();
        self::assertSame('hartley-goods', $value->getValue());
        $this->expectException(LocalizedException::class);
        (new MerchantId(['value' => 'Hartley.Goods']))->beforeSave();
    }

    private function runner(Glue $glue, LockManagerInterface $locks): RelayRunner
    {
        return new RelayRunner(
            $glue->config,
            $glue->outbox,
            new PublisherFactory($glue->config, new ScriptedHttp()),
            new EnvelopeFactory(),
            $glue->clock,
            $glue,
            $this->createMock(PayloadRebuilder::class),
            $locks
        );
    }

    public function testRunnerRefusesAnIncompleteConfiguration(): void
    {
        $glue = new Glue();
        $locks = $this->createMock(LockManagerInterface::class);
        $locks->expects(self::never())->method('lock');
        $this->expectException(RuntimeException::class);
        $this->expectExceptionMessage('Not paired with Ledger');
        $this->runner($glue, $locks)->run();
    }

    public function testRunnerIsSingleInstanceAndAlwaysUnlocks(): void
    {
        $glue = new Glue();
        $this->ready($glue->settings);
        $glue->settings->values['ledger_sage_sync/nats/url'] = 'nats://127.0.0.1:1';
        $memo = Models::creditmemo(Documents::ukCreditmemo(), Models::order(Documents::ukCardOrder()));
        $glue->recorder->creditmemo($memo);

        $busy = $this->createMock(LockManagerInterface::class);
        $busy->method('lock')->willReturn(false);
        $busy->expects(self::never())->method('unlock');
        self::assertNull($this->runner($glue, $busy)->run());

        $free = $this->createMock(LockManagerInterface::class);
        $free->expects(self::once())->method('lock')->with(RelayRunner::LOCK, 0)->willReturn(true);
        $free->expects(self::once())->method('unlock')->with(RelayRunner::LOCK);
        $result = $this->runner($glue, $free)->run(10, 5.0, true);
        self::assertStringContainsString('cannot connect to NATS at 127.0.0.1:1', (string) $result->stoppedBy);
        self::assertSame(1, $glue->outbox->all()[0]->attempts);
        self::assertSame('pending', end($glue->statuses)[2]);
    }

    public function testUnusableSettingIsReportedAndUnlocks(): void
    {
        $glue = new Glue();
        $this->ready($glue->settings);
        $glue->settings->values['ledger_sage_sync/general/transport'] = 'https';
        $glue->settings->values['ledger_sage_sync/https/url'] = 'http://ingest.ledger.example';
        $glue->settings->values['ledger_sage_sync/https/ingest_key'] = $glue->settings->encrypt('ik_live');
        $locks = $this->createMock(LockManagerInterface::class);
        $locks->method('lock')->willReturn(true);
        $locks->expects(self::once())->method('unlock');
        $this->expectException(RuntimeException::class);
        $this->expectExceptionMessage('not publishing: the Ledger gateway URL must be https://');
        $this->runner($glue, $locks)->run();
    }

    public function testCronJobsLogInsteadOfThrowing(): void
    {
        $glue = new Glue();
        $locks = $this->createMock(LockManagerInterface::class);
        (new PublishOutbox($glue->config, $this->runner($glue, $locks), $glue->logger))->execute();
        self::assertSame('warning', $glue->logger->lines[0][0]);
        self::assertStringContainsString('Not paired with Ledger', $glue->logger->lines[0][1]);

        $this->ready($glue->settings);
        $flags = new FlagManager();
        (new PullStatus($glue->config, new NullStatusFeed(), $glue, new ArrayDocuments(), $flags, $glue->logger))
            ->execute();
        self::assertSame([], $flags->flags, 'no feed, no cursor');
        self::assertSame([], $glue->statuses);
    }
}
