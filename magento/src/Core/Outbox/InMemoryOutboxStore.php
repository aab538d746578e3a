<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use DateTimeImmutable;
use Ledger\SageSync\Core\Publish\PublishAck;

/**
 * The outbox semantics without a database: the reference the SQL store follows, and the store of
 * the unit and end-to-end tests.
 */
final class InMemoryOutboxStore implements OutboxStore
{
    /** @var array<int, OutboxRecord> */
    private array $rows = [];

    /** @var array<string, int> open dedupe key => id */
    private array $keys = [];

    /** @var list<array{outbox_id: int, event_id: string, error: ?string}> */
    public array $deadLetters = [];

    private int $nextId = 1;

    public function append(OutboxRecord $record): bool
    {
        $existingId = $this->keys[$record->dedupeKey] ?? null;
        if ($existingId !== null) {
            $existing = $this->rows[$existingId];
            if (!$record->eventType->isCoalescing()) {
                return false;
            }
            $existing->eventId = $record->eventId;
            $existing->payload = $record->payload;
            $existing->occurredAt = $record->occurredAt;
            $existing->source = $record->source;
            $existing->status = OutboxStatus::Pending;
            $existing->attempts = 0;
            $existing->nextAttemptAt = $record->nextAttemptAt ?? $record->occurredAt;
            $existing->lastError = $record->lastError;
            return true;
        }
        $row = clone $record;
        $row->id = $this->nextId++;
        $row->nextAttemptAt ??= $row->occurredAt;
        $this->rows[$row->id] = $row;
        $this->keys[$row->dedupeKey] = $row->id;
        $record->id = $row->id;
        return true;
    }

    public function due(DateTimeImmutable $now, int $limit): array
    {
        $out = [];
        foreach ($this->rows as $row) {
            $open = $row->status === OutboxStatus::Pending || $row->status === OutboxStatus::Retry;
            if ($open && $row->nextAttemptAt <= $now) {
                $out[] = clone $row;
                if (count($out) >= $limit) {
                    break;
                }
            }
        }
        return $out;
    }

    public function hasOpenBefore(OutboxRecord $record): bool
    {
        foreach ($this->rows as $row) {
            if ($row->id >= $record->id) {
                break;
            }
            if ($row->aggregateKey() === $record->aggregateKey() && $row->status->isOpen()) {
                return true;
            }
        }
        return false;
    }

    public function markPublished(OutboxRecord $record, PublishAck $ack, DateTimeImmutable $at): void
    {
        $row = $this->sent($record);
        if ($row === null) {
            return;
        }
        $row->status = OutboxStatus::Published;
        $row->attempts = $record->attempts;
        $row->publishedAt = $at;
        $row->lastError = null;
        $row->transport = $ack->transport;
        $row->stream = $ack->stream;
        $row->sequence = $ack->sequence;
        $row->duplicate = $ack->duplicate;
        if ($row->eventType->isCoalescing()) {
            // The next save of this customer/product is a new event.
            unset($this->keys[$row->dedupeKey]);
        }
    }

    public function markFailed(OutboxRecord $record): void
    {
        $row = $this->sent($record);
        if ($row === null) {
            return;
        }
        $row->status = $record->status;
        $row->attempts = $record->attempts;
        $row->nextAttemptAt = $record->nextAttemptAt;
        $row->lastError = $record->lastError;
        if ($record->status === OutboxStatus::Dead) {
            $this->deadLetters[] = ['outbox_id' => $row->id, 'event_id' => $row->eventId, 'error' => $row->lastError];
        }
    }

    public function savePayload(OutboxRecord $record): void
    {
        $row = $this->sent($record);
        if ($row !== null) {
            $row->payload = $record->payload;
        }
    }

    /** The row as the relay read it, or null when it was coalesced (new event id) meanwhile. */
    private function sent(OutboxRecord $record): ?OutboxRecord
    {
        $row = $this->rows[$record->id] ?? null;
        return $row !== null && $row->eventId === $record->eventId ? $row : null;
    }

    public function requeueDead(array $ids, DateTimeImmutable $now): int
    {
        $count = 0;
        foreach ($this->rows as $row) {
            if ($row->status === OutboxStatus::Dead && ($ids === [] || in_array($row->id, $ids, true))) {
                $row->status = OutboxStatus::Pending;
                $row->attempts = 0;
                $row->nextAttemptAt = $now;
                $count++;
            }
        }
        return $count;
    }

    public function countByStatus(): array
    {
        $counts = [];
        foreach (OutboxStatus::cases() as $status) {
            $counts[$status->value] = 0;
        }
        foreach ($this->rows as $row) {
            $counts[$row->status->value]++;
        }
        return $counts;
    }

    public function forEntity(string $entityType, int $entityId): array
    {
        $out = [];
        foreach ($this->rows as $row) {
            if ($row->entityType === $entityType && $row->entityId === $entityId) {
                $out[] = clone $row;
            }
        }
        return $out;
    }

    /** @return list<OutboxRecord> */
    public function all(): array
    {
        return array_map(static fn (OutboxRecord $r): OutboxRecord => clone $r, array_values($this->rows));
    }
}
