<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Snapshot;

use InvalidArgumentException;

/**
 * Turns Magento numbers (decimal strings from the database, floats from in-memory totals) into
 * plain decimal strings: no exponent, dot separator, exact for strings, floats rounded to the
 * four decimals Magento stores.
 */
final class Decimal
{
    private const PLAIN = '/^(-?)([0-9]+)(?:\.([0-9]+))?$/D';

    /** Money: at least two decimals ("58.50"); null stays null. */
    public static function money(mixed $value): ?string
    {
        return self::format($value, 2);
    }

    /** Quantities, rates and percentages: as few decimals as needed ("3", "1.5", "0.8425"). */
    public static function number(mixed $value): ?string
    {
        return self::format($value, 0);
    }

    public static function format(mixed $value, int $minScale): ?string
    {
        if ($value === null || $value === '') {
            return null;
        }
        if (is_int($value)) {
            $text = (string) $value;
        } elseif (is_float($value)) {
            if (!is_finite($value)) {
                throw new InvalidArgumentException('not a finite number');
            }
            $text = number_format($value, 4, '.', '');
        } elseif (is_string($value)) {
            $text = trim($value);
            if (preg_match(self::PLAIN, $text) !== 1) {
                if (!is_numeric($text)) {
                    throw new InvalidArgumentException('not a number: "' . $value . '"');
                }
                $text = number_format((float) $text, 4, '.', '');
            }
        } else {
            throw new InvalidArgumentException('not a number: ' . get_debug_type($value));
        }
        preg_match(self::PLAIN, $text, $parts);
        $sign = $parts[1];
        $integer = ltrim($parts[2], '0');
        $integer = $integer === '' ? '0' : $integer;
        $fraction = rtrim($parts[3] ?? '', '0');
        if (strlen($fraction) < $minScale) {
            $fraction = str_pad($fraction, $minScale, '0');
        }
        if ($integer === '0' && trim($fraction, '0') === '') {
            $sign = '';
        }
        return $sign . $integer . ($fraction === '' ? '' : '.' . $fraction);
    }

    /** True when the decimal string is above zero. */
    public static function isPositive(?string $decimal): bool
    {
        return $decimal !== null && $decimal[0] !== '-' && trim(str_replace('.', '', $decimal), '0') !== '';
    }
}
