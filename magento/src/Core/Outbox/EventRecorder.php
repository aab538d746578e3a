<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use Ledger\SageSync\Core\Clock;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\Uuid;
use Throwable;

/**
 * Turns one Magento change into one outbox row, inside the caller's transaction.
 *
 * The event id is minted here, once. A snapshot that cannot be built does not fail the save (in
 * checkout the payment may already be captured): the row is written without payload and the
 * relay rebuilds it. A row that cannot be written does fail the save — the store throws.
 *
 * Customers and products are saved far more often than anything Sage holds of them changes (a
 * registered customer's address is saved again with every order). With a PayloadHashStore, a
 * save whose payload has the same fingerprint (PayloadHash) as the last one recorded for that
 * entity records nothing; a changed payload is recorded and its fingerprint kept.
 */
final class EventRecorder
{
    public function __construct(
        private OutboxStore $store,
        private SnapshotSerializer $serializer,
        private Clock $clock,
        private SourceInfo $source,
        private ?PayloadHashStore $hashes = null,
    ) {
    }

    /**
     * @param \DateTimeImmutable|null $at when it happened, if not now (backfill of old documents)
     * @param int|null $previousState for invoice.canceled: the state the invoice left (1 or 2)
     */
    public function invoice(
        EventType $type,
        array $invoice,
        array $order,
        int $websiteId,
        ?\DateTimeImmutable $at = null,
        ?int $previousState = null,
        ?string $backfillId = null
    ): OutboxRecord {
        $entityId = (int) ($invoice['entity_id'] ?? 0);
        return $this->record(
            $type,
            'invoice',
            $entityId,
            $websiteId,
            (int) ($invoice['store_id'] ?? $order['store_id'] ?? 0),
            null,
            fn (\DateTimeImmutable $now): array => match ($type) {
                EventType::InvoicePaid => $this->serializer->invoicePaid($invoice, $order, $now),
                EventType::InvoiceCanceled => $this->serializer->invoiceCanceled(
                    $invoice,
                    $order,
                    $previousState ?? 0,
                    $now
                ),
                default => $this->serializer->invoiceCreated($invoice, $order, $now),
            },
            $at,
            $backfillId
        );
    }

    /**
     * @param EventType $type creditmemo.created, or creditmemo.refunded / creditmemo.canceled for a
     *     pending credit memo that reached that state
     */
    public function creditmemo(
        array $creditmemo,
        array $order,
        int $websiteId,
        ?\DateTimeImmutable $at = null,
        EventType $type = EventType::CreditmemoCreated,
        ?string $backfillId = null
    ): OutboxRecord {
        return $this->record(
            $type,
            'creditmemo',
            (int) ($creditmemo['entity_id'] ?? 0),
            $websiteId,
            (int) ($creditmemo['store_id'] ?? $order['store_id'] ?? 0),
            null,
            fn (\DateTimeImmutable $now): array => $type === EventType::CreditmemoCreated
                ? $this->serializer->creditmemoCreated($creditmemo, $order, $now)
                : $this->serializer->creditmemoStateChanged($creditmemo, $order, $now),
            $at,
            $backfillId
        );
    }

    public function customer(array $customer, int $websiteId, int $storeId, ?string $backfillId = null): OutboxRecord
    {
        return $this->record(
            EventType::CustomerSaved,
            'customer',
            (int) ($customer['entity_id'] ?? $customer['id'] ?? 0),
            $websiteId,
            $storeId,
            null,
            fn (): array => $this->serializer->customerSaved($customer),
            null,
            $backfillId,
            true
        );
    }

    public function product(array $product, int $websiteId, int $storeId, ?string $backfillId = null): OutboxRecord
    {
        return $this->record(
            EventType::ProductSaved,
            'product',
            (int) ($product['entity_id'] ?? $product['id'] ?? 0),
            $websiteId,
            $storeId,
            $storeId,
            fn (): array => $this->serializer->productSaved($product),
            null,
            $backfillId,
            true
        );
    }

    /**
     * A row with ids only, for when even reading the entity failed inside the save.
     */
    public function withoutPayload(
        EventType $type,
        string $entityType,
        int $entityId,
        int $websiteId,
        int $storeId,
        string $reason
    ): OutboxRecord {
        $scope = $type === EventType::ProductSaved ? $storeId : null;
        return $this->record($type, $entityType, $entityId, $websiteId, $storeId, $scope, function () use ($reason) {
            throw new \RuntimeException($reason);
        });
    }

    /**
     * @param callable(\DateTimeImmutable): array<string, mixed> $build
     * @param bool $skipUnchanged record nothing when the payload's fingerprint is the entity's last
     */
    private function record(
        EventType $type,
        string $entityType,
        int $entityId,
        int $websiteId,
        int $storeId,
        ?int $dedupeScope,
        callable $build,
        ?\DateTimeImmutable $at = null,
        ?string $backfillId = null,
        bool $skipUnchanged = false
    ): OutboxRecord {
        if ($backfillId !== null && preg_match(OutboxRecord::BACKFILL_ID, $backfillId) !== 1) {
            throw new \InvalidArgumentException('backfill id ' . $backfillId . ' is not a safe token');
        }
        if ($entityId < 1) {
            throw new \InvalidArgumentException('cannot record ' . $type->value . ' of an unsaved ' . $entityType);
        }
        $now = $at ?? $this->clock->now();
        $error = null;
        try {
            $payload = $build($now);
        } catch (Throwable $e) {
            $payload = null;
            $error = 'snapshot failed at save, rebuilt on publish: ' . $e->getMessage();
        }
        $record = new OutboxRecord(
            eventId: Uuid::v4(),
            eventType: $type,
            dedupeKey: OutboxRecord::dedupeKey($type, $entityId, $dedupeScope),
            entityType: $entityType,
            entityId: $entityId,
            websiteId: max(0, $websiteId),
            storeId: max(0, $storeId),
            occurredAt: $now,
            source: $this->source->source(),
            payload: $payload,
            nextAttemptAt: $this->clock->now(),
            lastError: $error,
            backfillId: $backfillId,
        );
        $hash = $skipUnchanged && $this->hashes !== null && $payload !== null ? PayloadHash::of($payload) : null;
        $scope = $dedupeScope ?? 0;
        if ($hash !== null && $this->hashes->last($entityType, $entityId, $scope) === $hash) {
            // Nothing the contract carries changed since the last recorded save: no event.
            return $record;
        }
        $record->written = $this->store->append($record);
        if ($hash !== null && $record->written) {
            $this->hashes->remember($entityType, $entityId, $scope, $hash);
        }
        return $record;
    }
}
