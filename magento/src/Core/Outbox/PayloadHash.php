<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

/**
 * The fingerprint of a customer or product payload: SHA-256 (lower-case hex) of its JSON with
 * object keys sorted at every level and every "updated_at" left out. Magento stamps "updated_at"
 * on every save, so a save that changes nothing else (the address saved again with each order, a
 * product re-saved) has the same fingerprint as the one before it.
 */
final class PayloadHash
{
    private const JSON = JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
        | JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_SUBSTITUTE;

    /** @param array<mixed> $payload */
    public static function of(array $payload): string
    {
        return hash('sha256', json_encode(self::canonical($payload), self::JSON));
    }

    private static function canonical(mixed $value): mixed
    {
        if (!is_array($value)) {
            return $value;
        }
        if (array_is_list($value)) {
            return array_map(self::canonical(...), $value);
        }
        unset($value['updated_at']);
        ksort($value, SORT_STRING);
        $out = [];
        foreach ($value as $key => $item) {
            $out[$key] = self::canonical($item);
        }
        // An object stays an object in JSON even when every key was left out.
        return $out === [] ? new \stdClass() : $out;
    }
}
