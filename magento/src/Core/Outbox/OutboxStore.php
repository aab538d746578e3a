<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use DateTimeImmutable;
use Ledger\SageSync\Core\Publish\PublishAck;

/**
 * Storage of the outbox. The Magento implementation writes through the connection of the running
 * save, so append() is part of the business transaction; it must throw when it cannot write.
 */
interface OutboxStore
{
    /**
     * Writes the record once per dedupe key. A second append with the same key is ignored, except
     * for coalescing events (customers, products) whose still-open row takes the newer payload and
     * the new record's event id (a publish of the old one may already have reached the broker).
     * markPublished, markFailed and savePayload only touch the row if it still has the event id
     * the relay read, so a row coalesced during its publish is sent again with the newer data.
     *
     * @return bool true when a row was inserted or refreshed, false when it was a duplicate
     */
    public function append(OutboxRecord $record): bool;

    /**
     * Open rows (pending or retry) due at $now, oldest first.
     *
     * @return list<OutboxRecord>
     */
    public function due(DateTimeImmutable $now, int $limit): array;

    /** True when an older row of the same document is not published yet (it must go first). */
    public function hasOpenBefore(OutboxRecord $record): bool;

    public function markPublished(OutboxRecord $record, PublishAck $ack, DateTimeImmutable $at): void;

    /** Persists status, attempts, next_attempt_at and last_error; a dead row is also dead-lettered. */
    public function markFailed(OutboxRecord $record): void;

    /** Stores a payload the relay had to rebuild. */
    public function savePayload(OutboxRecord $record): void;

    /**
     * Puts dead rows back to pending with zero attempts.
     *
     * @param list<int> $ids empty = all dead rows
     */
    public function requeueDead(array $ids, DateTimeImmutable $now): int;

    /** @return array<string, int> row count per status value */
    public function countByStatus(): array;

    /** @return list<OutboxRecord> rows of one document, oldest first */
    public function forEntity(string $entityType, int $entityId): array;
}
