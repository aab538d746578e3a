<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use InvalidArgumentException;
use Ledger\SageSync\Core\Snapshot\Decimal;
use PHPUnit\Framework\TestCase;

final class DecimalTest extends TestCase
{
    /** @return array<string, array{mixed, ?string}> */
    public static function money(): array
    {
        return [
            'database decimal' => ['396.8700', '396.87'],
            'whole database decimal' => ['33.0000', '33.00'],
            'four decimals kept' => ['0.8425', '0.8425'],
            'integer' => [58, '58.00'],
            'float noise rounded to Magento scale' => [0.1 + 0.2, '0.30'],
            'negative' => ['-3.0000', '-3.00'],
            'negative zero' => [-0.0, '0.00'],
            'negative zero string' => ['-0.0000', '0.00'],
            'leading zeros' => ['007.5', '7.50'],
            'exponent float' => [1.0E-5, '0.00'],
            'exponent string' => ['1e3', '1000.00'],
            'null' => [null, null],
            'empty column' => ['', null],
        ];
    }

    /** @dataProvider money */
    public function testMoneyIsAPlainDecimalString(mixed $in, ?string $expected): void
    {
        $out = Decimal::money($in);
        self::assertSame($expected, $out);
        if ($out !== null) {
            self::assertMatchesRegularExpression('/^-?[0-9]+(\.[0-9]+)?$/', $out, 'contract money pattern');
        }
    }

    public function testNumbersUseAsFewDecimalsAsNeeded(): void
    {
        self::assertSame('3', Decimal::number('3.0000'));
        self::assertSame('1.5', Decimal::number(1.5));
        self::assertSame('20', Decimal::number('20.0000'));
        self::assertSame('1.165', Decimal::number('1.1650'));
        self::assertSame('0', Decimal::number('0.0000'));
    }

    public function testRejectsWhatIsNotANumber(): void
    {
        $this->expectException(InvalidArgumentException::class);
        Decimal::money('58,50');
    }

    public function testRejectsInfinity(): void
    {
        $this->expectException(InvalidArgumentException::class);
        Decimal::money(INF);
    }

    public function testPositive(): void
    {
        self::assertTrue(Decimal::isPositive('0.5'));
        self::assertFalse(Decimal::isPositive('0'));
        self::assertFalse(Decimal::isPositive('0.00'));
        self::assertFalse(Decimal::isPositive('-1'));
        self::assertFalse(Decimal::isPositive(null));
    }
}
