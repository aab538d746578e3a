<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use Ledger\SageSync\Core\Event\EventType;

/**
 * Which events one save of a credit memo produces.
 *
 * - A new credit memo is creditmemo.created, in whatever state Magento saved it (an online
 *   refund still pending at the gateway is state 1 open).
 * - A pending credit memo (state 1) that moves to state 2 is creditmemo.refunded (the gateway
 *   confirmed the refund); one that moves to state 3 is creditmemo.canceled (the refund was
 *   declined or canceled). The money moved, or did not, only then.
 * - Anything else (re-saves, comments, e-mails) produces nothing.
 */
final class CreditmemoEventPolicy
{
    public const STATE_OPEN = 1;
    public const STATE_REFUNDED = 2;
    public const STATE_CANCELED = 3;

    /** @return list<EventType> */
    public static function events(bool $isNew, int $state, ?int $originalState): array
    {
        if ($isNew) {
            return [EventType::CreditmemoCreated];
        }
        if ($originalState === self::STATE_OPEN && $state === self::STATE_REFUNDED) {
            return [EventType::CreditmemoRefunded];
        }
        if ($originalState === self::STATE_OPEN && $state === self::STATE_CANCELED) {
            return [EventType::CreditmemoCanceled];
        }
        return [];
    }

    /**
     * The events a backfill records for an existing credit memo: creditmemo.created, and nothing
     * for a canceled one (no money moved; Ledger must not post it).
     *
     * @return list<EventType>
     */
    public static function backfill(int $state): array
    {
        return $state === self::STATE_CANCELED ? [] : [EventType::CreditmemoCreated];
    }
}
