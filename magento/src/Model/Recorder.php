<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model;

use DateTimeImmutable;
use DateTimeZone;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Model\Snapshot\CaptureTime;
use Ledger\SageSync\Model\Snapshot\MagentoExtractor;
use Magento\Catalog\Model\Product;
use Magento\Customer\Model\Address;
use Magento\Customer\Model\Customer;
use Magento\Sales\Model\Order\Creditmemo;
use Magento\Sales\Model\Order\Invoice;
use Magento\Store\Model\StoreManagerInterface;
use Psr\Log\LoggerInterface;
use Throwable;

/**
 * Records Magento entities as outbox events (one row per event, in the caller's transaction).
 *
 * Reading the entity may fail (a broken third-party plugin, a missing order address): then a row
 * with ids only is written and the relay rebuilds its payload. Writing the row may not fail
 * silently: exceptions from the store propagate and Magento rolls the save back.
 */
class Recorder
{
    public function __construct(
        private EventRecorder $events,
        private MagentoExtractor $extractor,
        private StoreManagerInterface $storeManager,
        private StatusSink $status,
        private Config $config,
        private LoggerInterface $logger,
        private ?CaptureTime $captureTime = null,
    ) {
    }

    public function isEnabled(): bool
    {
        return $this->config->isEnabled();
    }

    /** @param int|null $previousState for invoice.canceled: the state the invoice left */
    public function invoice(
        Invoice $invoice,
        EventType $type,
        bool $backfill = false,
        ?int $previousState = null,
        ?string $backfillId = null
    ): void {
        $id = (int) $invoice->getId();
        $storeId = (int) $invoice->getStoreId();
        $websiteId = $this->websiteId($storeId);
        try {
            $order = $this->extractor->order($invoice->getOrder());
            $data = $this->extractor->invoice($invoice);
        } catch (Throwable $e) {
            $this->unreadable($type, 'invoice', $id, $websiteId, $storeId, $e);
            return;
        }
        $at = $backfill ? $this->documentTime($data) : null;
        if ($backfill && $type === EventType::InvoicePaid) {
            // Paid when the money was captured, which may be days after the invoice.
            $at = $this->captureTime?->of($invoice) ?? $at;
        }
        $record = $this->events->invoice($type, $data, $order, $websiteId, $at, $previousState, $backfillId);
        if ($record->written) {
            $this->status->update('invoice', $id, SageStatus::Pending, $this->queuedMessage($type));
        }
    }

    public function creditmemo(
        Creditmemo $creditmemo,
        bool $backfill = false,
        EventType $type = EventType::CreditmemoCreated,
        ?string $backfillId = null
    ): void {
        $id = (int) $creditmemo->getId();
        $storeId = (int) $creditmemo->getStoreId();
        $websiteId = $this->websiteId($storeId);
        try {
            $order = $this->extractor->order($creditmemo->getOrder());
            $data = $this->extractor->creditmemo($creditmemo);
        } catch (Throwable $e) {
            $this->unreadable($type, 'creditmemo', $id, $websiteId, $storeId, $e);
            return;
        }
        $at = $backfill ? $this->documentTime($data) : null;
        $record = $this->events->creditmemo($data, $order, $websiteId, $at, $type, $backfillId);
        if ($record->written) {
            $this->status->update('creditmemo', $id, SageStatus::Pending, $this->queuedMessage($type));
        }
    }

    public function customer(Customer $customer, ?Address $current = null, ?string $backfillId = null): void
    {
        $id = (int) $customer->getId();
        $websiteId = (int) $customer->getWebsiteId();
        $storeId = (int) $customer->getStoreId();
        try {
            $data = $this->extractor->customer($customer, $current);
        } catch (Throwable $e) {
            $this->unreadable(EventType::CustomerSaved, 'customer', $id, $websiteId, $storeId, $e);
            return;
        }
        $this->events->customer($data, $websiteId, $storeId, $backfillId);
    }

    public function product(Product $product, ?string $backfillId = null): void
    {
        $id = (int) $product->getId();
        $storeId = (int) $product->getStoreId();
        $websiteId = $storeId === 0 ? 0 : $this->websiteId($storeId);
        try {
            $data = $this->extractor->product($product);
        } catch (Throwable $e) {
            $this->unreadable(EventType::ProductSaved, 'product', $id, $websiteId, $storeId, $e);
            return;
        }
        $this->events->product($data, $websiteId, $storeId, $backfillId);
    }

    private function unreadable(
        EventType $type,
        string $entityType,
        int $id,
        int $websiteId,
        int $storeId,
        Throwable $error
    ): void {
        $this->logger->warning('Ledger Sage Sync: could not read ' . $entityType . ' ' . $id
            . ' during its save; recorded ids only, the publisher will rebuild it', ['exception' => $error]);
        $record = $this->events->withoutPayload($type, $entityType, $id, $websiteId, $storeId, $error->getMessage());
        if ($record->written) {
            $this->status->update($entityType, $id, SageStatus::Pending, $this->queuedMessage($type));
        }
    }

    private function queuedMessage(EventType $type): string
    {
        return 'Queued for Ledger (' . $type->value . ').';
    }

    private function websiteId(int $storeId): int
    {
        try {
            return (int) $this->storeManager->getStore($storeId)->getWebsiteId();
        } catch (Throwable) {
            return 0;
        }
    }

    /** For backfill: when the document was created (Magento stores UTC). */
    private function documentTime(array $document): ?DateTimeImmutable
    {
        $created = (string) ($document['created_at'] ?? '');
        if ($created === '') {
            return null;
        }
        try {
            return new DateTimeImmutable($created, new DateTimeZone('UTC'));
        } catch (Throwable) {
            return null;
        }
    }
}
