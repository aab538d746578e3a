<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use Ledger\SageSync\Core\Snapshot\QuoteAppliedTaxes;
use PHPUnit\Framework\TestCase;

final class QuoteAppliedTaxesTest extends TestCase
{
    /** quote item id => order item id */
    private const ORDER_ITEMS = ['801' => 9101, '802' => 9102, '803' => 9103];

    private static function group(string $code, float $percent, float $amount, array $rates): array
    {
        return ['code' => $code, 'title' => $code, 'percent' => $percent, 'amount' => $amount,
            'base_amount' => $amount, 'rates' => $rates];
    }

    private static function rate(string $code, float $percent): array
    {
        return ['code' => $code, 'title' => $code . ' title', 'percent' => $percent];
    }

    public function testOneRateKeepsItsCodeAndLinesBecomeOrderItems(): void
    {
        $vat = [self::rate('UK-VAT-20', 20.0)];
        $result = QuoteAppliedTaxes::convert([
            ['type' => 'product', 'item_id' => 801, 'associated_item_id' => null,
                'applied_taxes' => [self::group('UK-VAT-20', 20.0, 6.0, $vat)]],
            ['type' => 'shipping', 'item_id' => null, 'associated_item_id' => null,
                'applied_taxes' => [self::group('UK-VAT-20', 20.0, 0.9, $vat)]],
        ], self::ORDER_ITEMS);
        $tax = static fn (string $amount): array => ['code' => 'UK-VAT-20', 'title' => 'UK-VAT-20 title',
            'percent' => '20', 'amount' => $amount, 'base_amount' => $amount];
        self::assertSame([
            // 6.00 + 0.90
            'applied_taxes' => [$tax('6.90')],
            'item_applied_taxes' => [
                ['type' => 'product', 'item_id' => 9101, 'associated_item_id' => null,
                    'applied_taxes' => [$tax('6.00')]],
                ['type' => 'shipping', 'item_id' => null, 'associated_item_id' => null,
                    'applied_taxes' => [$tax('0.90')]],
            ],
        ], $result);
    }

    public function testACombinedGroupIsSplitIntoItsRatesByPercent(): void
    {
        // A California line: state 6 % and Los Angeles county 2.25 % apply together, 8.25 % on
        // 40.00 = 3.30. Magento's real_amount: 3.30 x 6 / 8.25 = 2.40 and 3.30 x 2.25 / 8.25 = 0.90.
        $result = QuoteAppliedTaxes::convert([
            ['type' => 'product', 'item_id' => '802', 'associated_item_id' => null, 'applied_taxes' => [
                self::group('US-CA-STATEUS-CA-LA', 8.25, 3.30, [self::rate('US-CA-STATE', 6.0),
                    self::rate('US-CA-LA', 2.25)]),
            ]],
        ], self::ORDER_ITEMS);
        self::assertSame([
            ['code' => 'US-CA-STATE', 'title' => 'US-CA-STATE title', 'percent' => '6', 'amount' => '2.40',
                'base_amount' => '2.40'],
            ['code' => 'US-CA-LA', 'title' => 'US-CA-LA title', 'percent' => '2.25', 'amount' => '0.90',
                'base_amount' => '0.90'],
        ], $result['item_applied_taxes'][0]['applied_taxes']);
        self::assertSame($result['item_applied_taxes'][0]['applied_taxes'], $result['applied_taxes']);
    }

    public function testZeroRatesAreLeftOutAsMagentoSavesNoRowForThem(): void
    {
        $result = QuoteAppliedTaxes::convert([
            ['type' => 'product', 'item_id' => 801, 'associated_item_id' => null,
                'applied_taxes' => [self::group('UK-VAT-0', 0.0, 0.0, [self::rate('UK-VAT-0', 0.0)])]],
        ], self::ORDER_ITEMS);
        self::assertSame([], $result['applied_taxes']);
        self::assertSame([], $result['item_applied_taxes'][0]['applied_taxes']);
    }

    public function testALineListedTwiceCountsOnceAndOneCodeOnALineIsSummed(): void
    {
        // Magento's converter repeats a line once per rate group it has. Two groups of the same
        // code on one line (e.g. compounding priorities) add up: 1.00 + 0.50 = 1.50.
        $groups = [
            self::group('EU-X', 10.0, 1.0, [self::rate('EU-X', 10.0)]),
            self::group('EU-X', 5.0, 0.5, [self::rate('EU-X', 5.0)]),
        ];
        $line = ['type' => 'product', 'item_id' => 803, 'associated_item_id' => null, 'applied_taxes' => $groups];
        $result = QuoteAppliedTaxes::convert([$line, $line], self::ORDER_ITEMS);
        self::assertCount(1, $result['item_applied_taxes']);
        self::assertSame('1.50', $result['item_applied_taxes'][0]['applied_taxes'][0]['amount']);
        self::assertSame('10', $result['item_applied_taxes'][0]['applied_taxes'][0]['percent'], 'first percent');
        self::assertSame('1.50', $result['applied_taxes'][0]['amount'], 'not 3.00');
    }

    public function testALineNotYetOnTheOrderGivesNoResultRatherThanAPartialOne(): void
    {
        $vat = [self::rate('UK-VAT-20', 20.0)];
        self::assertNull(QuoteAppliedTaxes::convert([
            ['type' => 'product', 'item_id' => 801, 'associated_item_id' => null,
                'applied_taxes' => [self::group('UK-VAT-20', 20.0, 6.0, $vat)]],
            ['type' => 'product', 'item_id' => 899, 'associated_item_id' => null,
                'applied_taxes' => [self::group('UK-VAT-20', 20.0, 1.0, $vat)]],
        ], self::ORDER_ITEMS));
    }

    public function testAssociatedPartsAndGroupsWithoutRates(): void
    {
        $result = QuoteAppliedTaxes::convert([
            ['type' => 'weee', 'item_id' => null, 'associated_item_id' => '801', 'applied_taxes' => [
                ['code' => 'UK-VAT-20', 'title' => 'VAT', 'percent' => '20.0000', 'amount' => '0.1000',
                    'base_amount' => '0.1000'],
            ]],
            ['type' => '', 'item_id' => null, 'associated_item_id' => null, 'applied_taxes' => []],
            'not a line',
        ], self::ORDER_ITEMS);
        self::assertSame([
            ['type' => 'weee', 'item_id' => null, 'associated_item_id' => 9101, 'applied_taxes' => [
                ['code' => 'UK-VAT-20', 'title' => 'VAT', 'percent' => '20', 'amount' => '0.10',
                    'base_amount' => '0.10'],
            ]],
        ], $result['item_applied_taxes']);
    }
}
