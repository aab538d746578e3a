<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use InvalidArgumentException;
use Ledger\SageSync\Core\Nats\NatsOptions;
use Ledger\SageSync\Core\Nats\NatsPublisher;
use PHPUnit\Framework\TestCase;

/** A store sends its key's secret when it connects: the module publishes over tls:// only. */
final class NatsOptionsTlsTest extends TestCase
{
    private string|false $saved;

    protected function setUp(): void
    {
        $this->saved = getenv('LEDGER_NATS_ALLOW_PLAIN');
        putenv('LEDGER_NATS_ALLOW_PLAIN');
    }

    protected function tearDown(): void
    {
        putenv($this->saved === false ? 'LEDGER_NATS_ALLOW_PLAIN' : 'LEDGER_NATS_ALLOW_PLAIN=' . $this->saved);
    }

    public function testPlainNatsIsRefusedNamingTheUrl(): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage('NATS URL: Ledger requires tls://');
        NatsPublisher::withOptions(NatsOptions::fromUrl('nats://nats.ledger.example:4222', 'mk_1', 's3cret'));
    }

    public function testTlsIsAccepted(): void
    {
        $options = NatsOptions::fromUrl('tls://nats.ledger.example:4443', 'mk_1', 's3cret');
        self::assertTrue($options->tls);
        self::assertInstanceOf(NatsPublisher::class, NatsPublisher::withOptions($options));
    }

    public function testTheDevelopmentOverrideAllowsPlain(): void
    {
        putenv('LEDGER_NATS_ALLOW_PLAIN=1');
        self::assertTrue(NatsOptions::plainAllowed());
        self::assertInstanceOf(
            NatsPublisher::class,
            NatsPublisher::withOptions(NatsOptions::fromUrl('nats://127.0.0.1:4222'))
        );
    }
}
