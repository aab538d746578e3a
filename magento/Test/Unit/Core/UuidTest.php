<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use Ledger\SageSync\Core\Uuid;
use PHPUnit\Framework\TestCase;

final class UuidTest extends TestCase
{
    public function testVersion4AndUnique(): void
    {
        $seen = [];
        for ($i = 0; $i < 500; $i++) {
            $id = Uuid::v4();
            self::assertTrue(Uuid::isV4($id), $id);
            self::assertMatchesRegularExpression(
                '/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/',
                $id
            );
            $seen[$id] = true;
        }
        self::assertCount(500, $seen);
        self::assertFalse(Uuid::isV4('e2a7c3f9-8b14-1d0e-9f6a-3c5b7d9e1f33'));
    }
}
