<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Outbox;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\PayloadRebuilder;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Model\Snapshot\MagentoExtractor;
use Magento\Catalog\Api\ProductRepositoryInterface;
use Magento\Catalog\Model\Product;
use Magento\Customer\Model\CustomerFactory;
use Magento\Framework\Exception\NoSuchEntityException;
use Magento\Sales\Api\CreditmemoRepositoryInterface;
use Magento\Sales\Api\InvoiceRepositoryInterface;
use Magento\Sales\Model\Order\Creditmemo;
use Magento\Sales\Model\Order\Invoice;

/**
 * Rebuilds a payload that could not be built inside the save, from the entity as it is now.
 * An entity that no longer exists can never be sent: RejectedException (dead letter).
 */
class EntityRebuilder implements PayloadRebuilder
{
    public function __construct(
        private InvoiceRepositoryInterface $invoices,
        private CreditmemoRepositoryInterface $creditmemos,
        private CustomerFactory $customers,
        private ProductRepositoryInterface $products,
        private MagentoExtractor $extractor,
        private SnapshotSerializer $serializer,
    ) {
    }

    public function rebuild(OutboxRecord $record): array
    {
        try {
            return match ($record->eventType) {
                EventType::InvoiceCreated, EventType::InvoicePaid, EventType::InvoiceCanceled
                    => $this->invoice($record),
                EventType::CreditmemoCreated, EventType::CreditmemoRefunded, EventType::CreditmemoCanceled
                    => $this->creditmemo($record),
                EventType::CustomerSaved => $this->customer($record),
                EventType::ProductSaved => $this->product($record),
            };
        } catch (NoSuchEntityException $e) {
            throw new RejectedException($record->entityType . ' ' . $record->entityId . ' no longer exists', 0, $e);
        }
    }

    private function invoice(OutboxRecord $record): array
    {
        $invoice = $this->invoices->get($record->entityId);
        if (!$invoice instanceof Invoice) {
            throw new RejectedException('invoice ' . $record->entityId . ' cannot be read');
        }
        $order = $this->extractor->order($invoice->getOrder());
        $data = $this->extractor->invoice($invoice);
        return match ($record->eventType) {
            EventType::InvoicePaid => $this->serializer->invoicePaid($data, $order, $record->occurredAt),
            // The state it left is not kept: a captured invoice (it has a gateway transaction)
            // was voided from paid, any other was canceled while open.
            EventType::InvoiceCanceled => $this->serializer->invoiceCanceled(
                $data,
                $order,
                (string) ($data['transaction_id'] ?? '') !== '' ? 2 : 1,
                $record->occurredAt
            ),
            default => $this->serializer->invoiceCreated($data, $order, $record->occurredAt),
        };
    }

    private function creditmemo(OutboxRecord $record): array
    {
        $creditmemo = $this->creditmemos->get($record->entityId);
        if (!$creditmemo instanceof Creditmemo) {
            throw new RejectedException('credit memo ' . $record->entityId . ' cannot be read');
        }
        $data = $this->extractor->creditmemo($creditmemo);
        $order = $this->extractor->order($creditmemo->getOrder());
        return $record->eventType === EventType::CreditmemoCreated
            ? $this->serializer->creditmemoCreated($data, $order, $record->occurredAt)
            : $this->serializer->creditmemoStateChanged($data, $order, $record->occurredAt);
    }

    private function customer(OutboxRecord $record): array
    {
        $customer = $this->customers->create()->load($record->entityId);
        if (!$customer->getId()) {
            throw new NoSuchEntityException();
        }
        return $this->serializer->customerSaved($this->extractor->customer($customer));
    }

    private function product(OutboxRecord $record): array
    {
        $product = $this->products->getById($record->entityId, false, $record->storeId);
        if (!$product instanceof Product) {
            throw new RejectedException('product ' . $record->entityId . ' cannot be read');
        }
        return $this->serializer->productSaved($this->extractor->product($product));
    }
}
