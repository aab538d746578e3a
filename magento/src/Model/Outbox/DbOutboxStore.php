<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Outbox;

use DateTimeImmutable;
use DateTimeZone;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Outbox\OutboxStore;
use Ledger\SageSync\Core\Publish\PublishAck;
use Magento\Framework\App\ResourceConnection;
use Magento\Framework\DB\Adapter\AdapterInterface;

/**
 * The outbox in MySQL/MariaDB, written through Magento's default connection — the same
 * connection, and so the same transaction, as the save that records the event. Every write
 * throws on failure; nothing is caught here.
 *
 * Dedupe: dedupe_key is UNIQUE. Documents insert with "ON DUPLICATE KEY UPDATE id = id" (the
 * first snapshot wins). Customers and products coalesce into their open row, which takes the new
 * payload and a new event id; when that row is published its key is suffixed with "#<id>", so the
 * next save is a new row. The relay's updates name the event id it sent ("WHERE id = ? AND
 * event_id = ?"), so a row coalesced while it was being published stays pending with the newer data.
 */
class DbOutboxStore implements OutboxStore
{
    public const TABLE = 'ledger_sage_outbox';
    public const DEAD_LETTER_TABLE = 'ledger_sage_dead_letter';

    /** Columns written by append(), in order. */
    public const INSERT_COLUMNS = [
        'event_id', 'event_type', 'dedupe_key', 'aggregate_key', 'entity_type', 'entity_id', 'website_id',
        'store_id', 'payload', 'source', 'traceparent', 'status', 'attempts', 'next_attempt_at', 'last_error',
        'occurred_at', 'backfill_id',
    ];

    private const TIME = 'Y-m-d H:i:s';
    private const JSON = JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
        | JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_SUBSTITUTE;

    public function __construct(private ResourceConnection $resource)
    {
    }

    public function append(OutboxRecord $record): bool
    {
        $connection = $this->connection();
        $table = $this->table(self::TABLE);
        $placeholders = implode(', ', array_fill(0, count(self::INSERT_COLUMNS), '?'));
        if ($record->eventType->isCoalescing()) {
            $onDuplicate = 'event_id = VALUES(event_id), payload = VALUES(payload), source = VALUES(source), '
                . 'occurred_at = VALUES(occurred_at), last_error = VALUES(last_error), '
                . "status = 'pending', attempts = 0, next_attempt_at = VALUES(next_attempt_at), "
                . 'backfill_id = VALUES(backfill_id)';
        } else {
            $onDuplicate = 'id = id';
        }
        $sql = 'INSERT INTO ' . $connection->quoteIdentifier($table)
            . ' (' . implode(', ', self::INSERT_COLUMNS) . ') VALUES (' . $placeholders . ')'
            . ' ON DUPLICATE KEY UPDATE ' . $onDuplicate;
        $statement = $connection->query($sql, [
            $record->eventId,
            $record->eventType->value,
            $record->dedupeKey,
            $record->aggregateKey(),
            $record->entityType,
            $record->entityId,
            $record->websiteId,
            $record->storeId,
            $record->payload === null ? null : json_encode($record->payload, self::JSON),
            json_encode($record->source, self::JSON),
            $record->traceparent,
            OutboxStatus::Pending->value,
            0,
            $this->time($record->nextAttemptAt ?? $record->occurredAt),
            $record->lastError === null ? null : mb_substr($record->lastError, 0, 2000),
            $this->time($record->occurredAt),
            $record->backfillId,
        ]);
        $affected = (int) $statement->rowCount();
        if ($affected === 1) {
            $record->id = (int) $connection->lastInsertId($table);
        }
        return $affected > 0;
    }

    public function due(DateTimeImmutable $now, int $limit): array
    {
        $connection = $this->connection();
        $rows = $connection->fetchAll(
            'SELECT * FROM ' . $connection->quoteIdentifier($this->table(self::TABLE))
            . " WHERE status IN ('pending', 'retry') AND next_attempt_at <= ? ORDER BY id LIMIT " . max(1, $limit),
            [$this->time($now)]
        );
        return array_map([$this, 'hydrate'], $rows);
    }

    public function hasOpenBefore(OutboxRecord $record): bool
    {
        $connection = $this->connection();
        return (bool) $connection->fetchOne(
            'SELECT 1 FROM ' . $connection->quoteIdentifier($this->table(self::TABLE))
            . " WHERE aggregate_key = ? AND id < ? AND status <> 'published' LIMIT 1",
            [$record->aggregateKey(), (int) $record->id]
        );
    }

    public function markPublished(OutboxRecord $record, PublishAck $ack, DateTimeImmutable $at): void
    {
        $connection = $this->connection();
        $bind = [
            'status' => OutboxStatus::Published->value,
            'attempts' => $record->attempts,
            'published_at' => $this->time($at),
            'last_error' => null,
            'transport' => $ack->transport,
            'js_stream' => $ack->stream,
            'js_seq' => $ack->sequence > 0 ? $ack->sequence : null,
            'js_duplicate' => $ack->duplicate ? 1 : 0,
        ];
        if ($record->eventType->isCoalescing()) {
            $bind['dedupe_key'] = mb_substr($record->dedupeKey, 0, 160) . '#' . $record->id;
        }
        $connection->update($this->table(self::TABLE), $bind, $this->sent($record));
    }

    public function markFailed(OutboxRecord $record): void
    {
        $connection = $this->connection();
        $connection->beginTransaction();
        try {
            $updated = $connection->update($this->table(self::TABLE), [
                'status' => $record->status->value,
                'attempts' => $record->attempts,
                'next_attempt_at' => $this->time($record->nextAttemptAt ?? new DateTimeImmutable('now')),
                'last_error' => $record->lastError === null ? null : mb_substr($record->lastError, 0, 2000),
            ], $this->sent($record));
            if ($updated > 0 && $record->status === OutboxStatus::Dead) {
                $connection->insert($this->table(self::DEAD_LETTER_TABLE), [
                    'outbox_id' => (int) $record->id,
                    'event_id' => $record->eventId,
                    'event_type' => $record->eventType->value,
                    'dedupe_key' => $record->dedupeKey,
                    'attempts' => $record->attempts,
                    'error' => $record->lastError,
                    'created_at' => $this->time(new DateTimeImmutable('now', new DateTimeZone('UTC'))),
                ]);
            }
            $connection->commit();
        } catch (\Throwable $e) {
            $connection->rollBack();
            throw $e;
        }
    }

    public function savePayload(OutboxRecord $record): void
    {
        $this->connection()->update(
            $this->table(self::TABLE),
            ['payload' => $record->payload === null ? null : json_encode($record->payload, self::JSON)],
            $this->sent($record)
        );
    }

    public function requeueDead(array $ids, DateTimeImmutable $now): int
    {
        $connection = $this->connection();
        $where = ['status = ?' => OutboxStatus::Dead->value];
        $letters = ['resolved_at IS NULL'];
        if ($ids !== []) {
            $ids = array_map('intval', $ids);
            $where['id IN (?)'] = $ids;
            $letters['outbox_id IN (?)'] = $ids;
        }
        $connection->beginTransaction();
        try {
            $count = $connection->update($this->table(self::TABLE), [
                'status' => OutboxStatus::Pending->value,
                'attempts' => 0,
                'next_attempt_at' => $this->time($now),
            ], $where);
            $connection->update($this->table(self::DEAD_LETTER_TABLE), ['resolved_at' => $this->time($now)], $letters);
            $connection->commit();
        } catch (\Throwable $e) {
            $connection->rollBack();
            throw $e;
        }
        return (int) $count;
    }

    public function countByStatus(): array
    {
        $connection = $this->connection();
        $statuses = array_map(static fn (OutboxStatus $s): string => $s->value, OutboxStatus::cases());
        $counts = array_fill_keys($statuses, 0);
        $pairs = $connection->fetchPairs(
            'SELECT status, COUNT(*) FROM ' . $connection->quoteIdentifier($this->table(self::TABLE))
            . ' GROUP BY status'
        );
        foreach ($pairs as $status => $count) {
            $counts[(string) $status] = (int) $count;
        }
        return $counts;
    }

    public function forEntity(string $entityType, int $entityId): array
    {
        $connection = $this->connection();
        $rows = $connection->fetchAll(
            'SELECT * FROM ' . $connection->quoteIdentifier($this->table(self::TABLE))
            . ' WHERE entity_type = ? AND entity_id = ? ORDER BY id',
            [$entityType, $entityId]
        );
        return array_map([$this, 'hydrate'], $rows);
    }

    /** @return list<array<string, mixed>> unresolved dead letters, newest first */
    public function deadLetters(int $limit = 20): array
    {
        $connection = $this->connection();
        return $connection->fetchAll(
            'SELECT outbox_id, event_id, event_type, dedupe_key, attempts, error, created_at FROM '
            . $connection->quoteIdentifier($this->table(self::DEAD_LETTER_TABLE))
            . ' WHERE resolved_at IS NULL ORDER BY id DESC LIMIT ' . max(1, $limit)
        );
    }

    public function unresolvedDeadLetters(): int
    {
        $connection = $this->connection();
        return (int) $connection->fetchOne(
            'SELECT COUNT(*) FROM ' . $connection->quoteIdentifier($this->table(self::DEAD_LETTER_TABLE))
            . ' WHERE resolved_at IS NULL'
        );
    }

    /** UTC time of the oldest event not yet published, or null. */
    public function oldestOpen(): ?string
    {
        $connection = $this->connection();
        $value = $connection->fetchOne(
            'SELECT MIN(occurred_at) FROM ' . $connection->quoteIdentifier($this->table(self::TABLE))
            . " WHERE status <> 'published'"
        );
        return $value === false || $value === null ? null : (string) $value;
    }

    public function lastPublished(): ?string
    {
        $connection = $this->connection();
        $value = $connection->fetchOne(
            'SELECT MAX(published_at) FROM ' . $connection->quoteIdentifier($this->table(self::TABLE))
        );
        return $value === false || $value === null ? null : (string) $value;
    }

    /** @param array<string, mixed> $row */
    private function hydrate(array $row): OutboxRecord
    {
        $payload = $row['payload'] === null ? null : json_decode((string) $row['payload'], true);
        $record = new OutboxRecord(
            eventId: (string) $row['event_id'],
            eventType: EventType::from((string) $row['event_type']),
            dedupeKey: (string) $row['dedupe_key'],
            entityType: (string) $row['entity_type'],
            entityId: (int) $row['entity_id'],
            websiteId: (int) $row['website_id'],
            storeId: (int) $row['store_id'],
            occurredAt: $this->parseTime((string) $row['occurred_at']),
            source: (array) json_decode((string) $row['source'], true),
            payload: is_array($payload) ? $payload : null,
            traceparent: $row['traceparent'] === null ? null : (string) $row['traceparent'],
            status: OutboxStatus::from((string) $row['status']),
            attempts: (int) $row['attempts'],
            nextAttemptAt: $this->parseTime((string) $row['next_attempt_at']),
            lastError: $row['last_error'] === null ? null : (string) $row['last_error'],
            id: (int) $row['id'],
            publishedAt: empty($row['published_at']) ? null : $this->parseTime((string) $row['published_at']),
            transport: $row['transport'] ?? null,
            stream: $row['js_stream'] ?? null,
            sequence: isset($row['js_seq']) ? (int) $row['js_seq'] : null,
            duplicate: (bool) ($row['js_duplicate'] ?? false),
            backfillId: isset($row['backfill_id']) ? (string) $row['backfill_id'] : null,
        );
        $record->written = true;
        return $record;
    }

    /** @return array<string, mixed> the row as the relay read it: a coalesced row has a new event id */
    private function sent(OutboxRecord $record): array
    {
        return ['id = ?' => (int) $record->id, 'event_id = ?' => $record->eventId];
    }

    private function connection(): AdapterInterface
    {
        return $this->resource->getConnection();
    }

    private function table(string $name): string
    {
        return $this->resource->getTableName($name);
    }

    private function time(DateTimeImmutable $time): string
    {
        return $time->setTimezone(new DateTimeZone('UTC'))->format(self::TIME);
    }

    private function parseTime(string $value): DateTimeImmutable
    {
        return new DateTimeImmutable($value, new DateTimeZone('UTC'));
    }
}
