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
 * - Anything else (re-saves, refunds touching the invoice, cancel) produces nothing. The outbox
 *   dedupe keys make a repeated event a no-op in any case.
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
        return $events;
    }
}
