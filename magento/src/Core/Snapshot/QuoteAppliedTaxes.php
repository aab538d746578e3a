<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Snapshot;

/**
 * Magento's applied taxes of an order that is still being placed, in the shape Magento REST
 * prints once the order is saved (OrderTaxManagementInterface::getOrderTaxDetails).
 *
 * While checkout saves a new order, Magento keeps the applied taxes only in memory, as the quote
 * conversion left them (order extension attributes applied_taxes / item_applied_taxes): lines are
 * named by QUOTE item id and same-priority rates are grouped under one combined code. The
 * sales_order_tax rows that getOrderTaxDetails reads are written after the order save, so an
 * invoice captured during checkout is saved before they exist. This class performs the same
 * conversion Magento's Tax OrderSave plugin and TaxManagement perform, on plain arrays:
 *
 *  - a group with one rate becomes that rate's code and title with the group's percent and amounts;
 *    a group with several rates becomes one entry per rate, its amount split by percent
 *    (amount x rate percent / group percent, Magento's real_amount);
 *  - rates of 0 % are left out (Magento saves no tax row for them), so zero-rated lines have no entry;
 *  - quote item ids become order item ids; when a line cannot be found on the order the result
 *    would be incomplete, so there is none (null);
 *  - the same line listed twice (Magento's converter repeats a line with several rate groups) counts once;
 *  - entries of one line with the same code are summed; the order's applied_taxes sum all lines by code.
 *
 * Input, one row per taxable part: ['type' => 'product'|'shipping'|…, 'item_id' => quote item id
 * or null, 'associated_item_id' => quote item id or null, 'applied_taxes' => [['code', 'title',
 * 'percent', 'amount', 'base_amount', 'rates' => [['code', 'title', 'percent'], …]], …]].
 */
final class QuoteAppliedTaxes
{
    /**
     * @param list<array<string, mixed>> $items the quote conversion's item applied taxes
     * @param array<int|string, int|string|null> $orderItemIds quote item id => order item id
     * @return array{applied_taxes: list<array<string, mixed>>, item_applied_taxes: list<array<string, mixed>>}|null
     */
    public static function convert(array $items, array $orderItemIds): ?array
    {
        $lines = [];
        foreach ($items as $item) {
            if (!is_array($item)) {
                continue;
            }
            $type = is_string($item['type'] ?? null) ? $item['type'] : '';
            if ($type === '') {
                continue;
            }
            $itemId = self::orderItemId($item['item_id'] ?? null, $orderItemIds);
            $associatedId = self::orderItemId($item['associated_item_id'] ?? null, $orderItemIds);
            if ($itemId === false || $associatedId === false) {
                return null;
            }
            $key = $itemId !== null ? 'item:' . $itemId : $type . ':' . ($associatedId ?? '');
            if (isset($lines[$key])) {
                continue;
            }
            $taxes = [];
            foreach (is_array($item['applied_taxes'] ?? null) ? $item['applied_taxes'] : [] as $group) {
                foreach (self::rates($group) as $rate) {
                    $code = $rate['code'];
                    if (isset($taxes[$code])) {
                        $taxes[$code]['amount'] += $rate['amount'];
                        $taxes[$code]['base_amount'] += $rate['base_amount'];
                    } else {
                        $taxes[$code] = $rate;
                    }
                }
            }
            $lines[$key] = [
                'type' => $type,
                'item_id' => $itemId,
                'associated_item_id' => $associatedId,
                'applied_taxes' => array_values($taxes),
            ];
        }

        $order = [];
        foreach ($lines as $line) {
            foreach ($line['applied_taxes'] as $tax) {
                $code = $tax['code'];
                if (isset($order[$code])) {
                    $order[$code]['amount'] += $tax['amount'];
                    $order[$code]['base_amount'] += $tax['base_amount'];
                } else {
                    $order[$code] = $tax;
                }
            }
        }

        $itemApplied = [];
        foreach ($lines as $line) {
            $line['applied_taxes'] = array_map([self::class, 'money'], $line['applied_taxes']);
            $itemApplied[] = $line;
        }
        return [
            'applied_taxes' => array_values(array_map([self::class, 'money'], $order)),
            'item_applied_taxes' => $itemApplied,
        ];
    }

    /**
     * The rates of one applied-tax group, each with its share of the group's amounts.
     *
     * @return list<array{code: string, title: ?string, percent: float, amount: float, base_amount: float}>
     */
    private static function rates(mixed $group): array
    {
        if (!is_array($group)) {
            return [];
        }
        $percent = self::float($group['percent'] ?? null);
        $amount = self::float($group['amount'] ?? null) ?? 0.0;
        $baseAmount = self::float($group['base_amount'] ?? null) ?? 0.0;
        if ($percent === null || $percent <= 0.0) {
            return [];
        }
        $rates = [];
        foreach (is_array($group['rates'] ?? null) ? $group['rates'] : [] as $rate) {
            if (is_array($rate) && self::text($rate['code'] ?? null) !== null) {
                $rates[] = $rate;
            }
        }
        if ($rates === []) {
            $code = self::text($group['code'] ?? null);
            return $code === null ? [] : [[
                'code' => $code,
                'title' => self::text($group['title'] ?? null),
                'percent' => $percent,
                'amount' => $amount,
                'base_amount' => $baseAmount,
            ]];
        }
        if (count($rates) === 1) {
            return [[
                'code' => (string) self::text($rates[0]['code']),
                'title' => self::text($rates[0]['title'] ?? null),
                'percent' => $percent,
                'amount' => $amount,
                'base_amount' => $baseAmount,
            ]];
        }
        $out = [];
        foreach ($rates as $rate) {
            $ratePercent = self::float($rate['percent'] ?? null);
            if ($ratePercent === null || $ratePercent <= 0.0) {
                continue;
            }
            $out[] = [
                'code' => (string) self::text($rate['code']),
                'title' => self::text($rate['title'] ?? null),
                'percent' => $ratePercent,
                'amount' => $amount * $ratePercent / $percent,
                'base_amount' => $baseAmount * $ratePercent / $percent,
            ];
        }
        return $out;
    }

    /**
     * The order item id for a quote item id: null when there is none (shipping), false when the
     * quote item is not on the order.
     *
     * @param array<int|string, int|string|null> $orderItemIds
     */
    private static function orderItemId(mixed $quoteItemId, array $orderItemIds): int|false|null
    {
        if ($quoteItemId === null || $quoteItemId === '' || !is_scalar($quoteItemId)) {
            return null;
        }
        $orderItemId = (int) ($orderItemIds[(string) $quoteItemId] ?? 0);
        return $orderItemId > 0 ? $orderItemId : false;
    }

    /** @param array{code: string, title: ?string, percent: float, amount: float, base_amount: float} $tax */
    private static function money(array $tax): array
    {
        return [
            'code' => $tax['code'],
            'title' => $tax['title'],
            'percent' => Decimal::number($tax['percent']),
            'amount' => Decimal::money($tax['amount']),
            'base_amount' => Decimal::money($tax['base_amount']),
        ];
    }

    private static function float(mixed $value): ?float
    {
        if (is_int($value) || is_float($value)) {
            return is_finite((float) $value) ? (float) $value : null;
        }
        if (is_string($value) && is_numeric(trim($value))) {
            return (float) trim($value);
        }
        return null;
    }

    private static function text(mixed $value): ?string
    {
        if (!is_scalar($value)) {
            return null;
        }
        $text = trim((string) $value);
        return $text === '' ? null : $text;
    }
}
