<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use DateTimeImmutable;
use Ledger\SageSync\Core\Event\EventType;

/**
 * One outbox row: one event, its payload (null when the snapshot could not be built inside the
 * save and must be rebuilt by the relay) and its delivery state.
 */
final class OutboxRecord
{
    /** A backfill's id: the event is history (envelope backfill_id, history subject). */
    public const BACKFILL_ID = '/^[a-z0-9][a-z0-9_-]{0,62}$/D';

    /** Set by EventRecorder: false when the store ignored the row as a duplicate. */
    public bool $written = false;

    /**
     * @param array<string, mixed>|null $payload
     * @param array<string, string|null> $source module_version, magento_version, magento_edition
     */
    public function __construct(
        public string $eventId,
        public EventType $eventType,
        public string $dedupeKey,
        public string $entityType,
        public int $entityId,
        public int $websiteId,
        public int $storeId,
        public DateTimeImmutable $occurredAt,
        public array $source,
        public ?array $payload,
        public ?string $traceparent = null,
        public OutboxStatus $status = OutboxStatus::Pending,
        public int $attempts = 0,
        public ?DateTimeImmutable $nextAttemptAt = null,
        public ?string $lastError = null,
        public ?int $id = null,
        public ?DateTimeImmutable $publishedAt = null,
        public ?string $transport = null,
        public ?string $stream = null,
        public ?int $sequence = null,
        public bool $duplicate = false,
        public ?string $backfillId = null,
    ) {
    }

    /** Events of one document are delivered in the order they were recorded. */
    public function aggregateKey(): string
    {
        return self::aggregate($this->entityType, $this->entityId);
    }

    public static function aggregate(string $entityType, int $entityId): string
    {
        return $entityType . ':' . $entityId;
    }

    /**
     * invoice.created:1045, invoice.paid:1045, creditmemo.created:77, customer.saved:412,
     * product.saved:104:0 (per store scope).
     */
    public static function dedupeKey(EventType $type, int $entityId, ?int $storeId = null): string
    {
        return $type->value . ':' . $entityId . ($storeId === null ? '' : ':' . $storeId);
    }
}
