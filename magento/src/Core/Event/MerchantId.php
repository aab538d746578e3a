<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Event;

use InvalidArgumentException;

/**
 * Ledger's merchant id is one NATS subject token: ^[a-z0-9][a-z0-9_-]{0,62}$.
 */
final class MerchantId
{
    public const PATTERN = '/^[a-z0-9][a-z0-9_-]{0,62}$/D';

    public static function isValid(string $merchantId): bool
    {
        return preg_match(self::PATTERN, $merchantId) === 1;
    }

    public static function assertValid(string $merchantId): void
    {
        if (!self::isValid($merchantId)) {
            throw new InvalidArgumentException(
                'Invalid Ledger merchant id "' . $merchantId . '": use a-z, 0-9, "-" and "_" (max 63 characters)'
            );
        }
    }
}
