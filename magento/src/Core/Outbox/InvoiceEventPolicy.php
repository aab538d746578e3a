<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use Ledger\SageSync\Core\Event\EventType;

/**
 * Which events one save of an invoice produces.
 *
 * - A new invoice is invoice.created.
 * - An invoice that is paid (state 2) now and was not before — new and already paid, or Invoice::pay()
 *   ran during this save (wasPayCalled), or its state moved to 2 — is invoice.paid, after created.
 *   Offline methods (checkmo, banktransfer, purchaseorder, cashondelivery, free, companycredit) are
 *   "paid" the moment Magento creates the invoice; the module reports that as Magento says it and
 *   Ledger decides what a net-terms method means for the books.
 * - An invoice that moves to state 3 (canceled) from open (Invoice::cancel(), canceled before
 *   capture) or from paid (Invoice::void(), voided after capture) is invoice.canceled; the
 *   state it left goes into the event (previous_state).
 * - Anything else (re-saves, refunds touching the invoice) produces nothing. The outbox dedupe
 *   keys make a repeated event a no-op in any case.
 */
final class InvoiceEventPolicy
{
    public const STATE_OPEN = 1;
    public const STATE_PAID = 2;
    public const STATE_CANCELED = 3;

    /** @return list<EventType> */
    public static function events(bool $isNew, int $state, ?int $originalState, bool $wasPayCalled): array
    {
        $events = [];
        if ($isNew) {
            $events[] = EventType::InvoiceCreated;
        }
        if ($state === self::STATE_PAID && ($isNew || $wasPayCalled || $originalState !== self::STATE_PAID)) {
            $events[] = EventType::InvoicePaid;
        }
        if (
            !$isNew && $state === self::STATE_CANCELED
            && ($originalState === self::STATE_OPEN || $originalState === self::STATE_PAID)
        ) {
            $events[] = EventType::InvoiceCanceled;
        }
        return $events;
    }

    /**
     * The events a backfill records for an existing invoice: as at its creation, and nothing for
     * a canceled invoice (it is not a live document; Ledger must not post it).
     *
     * @return list<EventType>
     */
    public static function backfill(int $state): array
    {
        return $state === self::STATE_CANCELED ? [] : self::events(true, $state, null, false);
    }
}
