<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Event;

/**
 * The events of the Ledger contract (schemas/events/envelope.schema.json, event_type).
 */
enum EventType: string
{
    case InvoiceCreated = 'invoice.created';
    case InvoicePaid = 'invoice.paid';
    case InvoiceCanceled = 'invoice.canceled';
    case CreditmemoCreated = 'creditmemo.created';
    case CreditmemoRefunded = 'creditmemo.refunded';
    case CreditmemoCanceled = 'creditmemo.canceled';
    case CustomerSaved = 'customer.saved';
    case ProductSaved = 'product.saved';

    /** First half of the type: invoice, creditmemo, customer or product. */
    public function entity(): string
    {
        return explode('.', $this->value)[0];
    }

    /** Second half of the type: created, paid, canceled, refunded or saved. */
    public function action(): string
    {
        return explode('.', $this->value)[1];
    }

    /**
     * Master data is coalesced: while an event is unpublished, a newer save of the same entity
     * replaces its payload instead of adding a row. Sales documents are facts and never change.
     */
    public function isCoalescing(): bool
    {
        return $this === self::CustomerSaved || $this === self::ProductSaved;
    }

    /** NATS subject: magento.<merchant_id>.<entity>.<action>. */
    public function subject(string $merchantId): string
    {
        MerchantId::assertValid($merchantId);
        return 'magento.' . $merchantId . '.' . $this->entity() . '.' . $this->action();
    }

    /**
     * The history subject a backfill publishes on: magento.<merchant>.history.<entity>.<action>
     * (Ledger handles it after the merchant's live events).
     */
    public function historySubject(string $merchantId): string
    {
        MerchantId::assertValid($merchantId);
        return 'magento.' . $merchantId . '.history.' . $this->entity() . '.' . $this->action();
    }
}
