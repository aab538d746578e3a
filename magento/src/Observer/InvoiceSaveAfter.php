<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\InvoiceEventPolicy;
use Ledger\SageSync\Model\NewEntityRegistry;
use Ledger\SageSync\Model\Recorder;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;
use Magento\Sales\Model\Order\Invoice;

/**
 * sales_order_invoice_save_after, inside the save's transaction: invoice.created for a new
 * invoice, invoice.paid when it is paid now, invoice.canceled when it was canceled or voided
 * now (see InvoiceEventPolicy), one outbox row each.
 */
class InvoiceSaveAfter implements ObserverInterface
{
    public function __construct(private Recorder $recorder, private NewEntityRegistry $registry)
    {
    }

    public function execute(Observer $observer): void
    {
        $invoice = $observer->getEvent()->getData('invoice');
        if (!$invoice instanceof Invoice) {
            return;
        }
        $isNew = $this->registry->takeNew($invoice);
        if (!$invoice->getId() || !$this->recorder->isEnabled()) {
            return;
        }
        $originalState = $invoice->getOrigData('state');
        $events = InvoiceEventPolicy::events(
            $isNew,
            (int) $invoice->getState(),
            $originalState === null ? null : (int) $originalState,
            (bool) $invoice->wasPayCalled()
        );
        foreach ($events as $type) {
            $this->recorder->invoice(
                $invoice,
                $type,
                false,
                $type === EventType::InvoiceCanceled ? (int) $originalState : null
            );
        }
    }
}
