<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Status;

use DateTimeImmutable;
use DateTimeZone;
use Ledger\SageSync\Core\Status\DocumentStatus;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Core\Status\StatusReader;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Core\Status\StatusUpdate;
use Magento\Framework\App\ResourceConnection;

/**
 * Sage status of invoices and credit memos: one row per document in its status table (joined by
 * the core grid refresh, see etc/di.xml) and the same values written straight into the grid row,
 * because a later status change does not touch sales_invoice.updated_at and the grid indexer
 * would never notice it. Customers and products have no grid; their state lives in the outbox.
 *
 * Changes from Ledger's feed are merged into the row's `feed_state` (the document's and its
 * payment's latest states, {@see DocumentStatus}); `status`, `message`, `sage_ref` (Sage's own
 * number, SI-12 / SCN-3) and `sage_id` are what that merge shows.
 */
class DbStatusSink implements StatusSink, StatusReader
{
    /** entity type => [status table, id column, grid table] */
    public const TABLES = [
        'invoice' => ['ledger_sage_invoice_status', 'invoice_id', 'sales_invoice_grid'],
        'creditmemo' => ['ledger_sage_creditmemo_status', 'creditmemo_id', 'sales_creditmemo_grid'],
    ];

    public function __construct(private ResourceConnection $resource)
    {
    }

    public function update(
        string $entityType,
        int $entityId,
        SageStatus $status,
        ?string $message,
        ?string $sageReference = null,
        ?DateTimeImmutable $at = null
    ): void {
        if (!isset(self::TABLES[$entityType])) {
            return;
        }
        [$table, $idColumn, $grid] = self::TABLES[$entityType];
        $message = $message === null ? null : mb_substr($message, 0, 255);
        $connection = $this->resource->getConnection('sales');
        $connection->query(
            'INSERT INTO ' . $connection->quoteIdentifier($this->resource->getTableName($table, 'sales'))
            . ' (' . $idColumn . ', status, message, sage_ref, updated_at) VALUES (?, ?, ?, ?, ?)'
            . ' ON DUPLICATE KEY UPDATE status = VALUES(status), message = VALUES(message),'
            . ' sage_ref = COALESCE(VALUES(sage_ref), sage_ref), updated_at = VALUES(updated_at)',
            [
                $entityId,
                $status->value,
                $message,
                $sageReference === null ? null : mb_substr($sageReference, 0, 64),
                self::utc($at),
            ]
        );
        $this->grid($grid, $entityId, $status, $message);
    }

    public function apply(string $entityType, int $entityId, StatusUpdate $update, bool $payment): void
    {
        if (!isset(self::TABLES[$entityType])) {
            return;
        }
        [$table, $idColumn, $grid] = self::TABLES[$entityType];
        $connection = $this->resource->getConnection('sales');
        $name = $connection->quoteIdentifier($this->resource->getTableName($table, 'sales'));
        $stored = $connection->fetchOne(
            'SELECT feed_state FROM ' . $name . ' WHERE ' . $idColumn . ' = ?',
            [$entityId]
        );
        $merged = DocumentStatus::fromJson(is_string($stored) ? $stored : null)->with($update, $payment);
        if ($merged === null) {
            return; // older than what this part already shows
        }
        [$status, $message, $number, $sageId] = $merged->chip();
        $message = mb_substr($message, 0, 255);
        $connection->query(
            'INSERT INTO ' . $name
            . ' (' . $idColumn . ', status, message, sage_ref, sage_id, feed_state, updated_at)'
            . ' VALUES (?, ?, ?, ?, ?, ?, ?)'
            . ' ON DUPLICATE KEY UPDATE status = VALUES(status), message = VALUES(message),'
            . ' sage_ref = COALESCE(VALUES(sage_ref), sage_ref), sage_id = COALESCE(VALUES(sage_id), sage_id),'
            . ' feed_state = VALUES(feed_state), updated_at = VALUES(updated_at)',
            [
                $entityId,
                $status->value,
                $message,
                $number === null ? null : mb_substr($number, 0, 64),
                $sageId === null ? null : mb_substr($sageId, 0, 64),
                $merged->toJson(),
                self::utc($merged->at()),
            ]
        );
        $this->grid($grid, $entityId, $status, $message);
    }

    public function sageReference(string $entityType, int $entityId): ?string
    {
        $ref = $this->get($entityType, $entityId)['sage_ref'] ?? null;
        return is_string($ref) && $ref !== '' ? $ref : null;
    }

    /**
     * @return array{status: string, message: ?string, sage_ref: ?string, sage_id: ?string,
     *     updated_at: string}|null
     */
    public function get(string $entityType, int $entityId): ?array
    {
        if (!isset(self::TABLES[$entityType])) {
            return null;
        }
        [$table, $idColumn] = self::TABLES[$entityType];
        $connection = $this->resource->getConnection('sales');
        $row = $connection->fetchRow(
            'SELECT status, message, sage_ref, sage_id, updated_at FROM '
            . $connection->quoteIdentifier($this->resource->getTableName($table, 'sales'))
            . ' WHERE ' . $idColumn . ' = ?',
            [$entityId]
        );
        return is_array($row) ? $row : null;
    }

    /**
     * Invoices and credit memos whose status is *Failed* (Ledger could not post them, or the
     * module gave up delivering them): how many there are, and the newest `$limit` of them with
     * their document number and reason, newest first.
     *
     * @return array{count: int, newest: list<array{entity_type: string, entity_id: int,
     *     increment_id: string, message: string, updated_at: string}>}
     */
    public function refusals(int $limit = 5): array
    {
        $connection = $this->resource->getConnection('sales');
        $count = 0;
        $parts = [];
        foreach (self::TABLES as $entityType => [$table, $idColumn]) {
            $statusTable = $connection->quoteIdentifier($this->resource->getTableName($table, 'sales'));
            $documents = $connection->quoteIdentifier($this->resource->getTableName('sales_' . $entityType, 'sales'));
            $count += (int) $connection->fetchOne(
                'SELECT COUNT(*) FROM ' . $statusTable . ' WHERE status = ?',
                [SageStatus::Failed->value]
            );
            $parts[] = $connection->quoteInto(
                'SELECT ' . $connection->quote($entityType) . ' AS entity_type, s.' . $idColumn . ' AS entity_id,'
                . ' d.increment_id, s.message, s.updated_at FROM ' . $statusTable . ' s'
                . ' JOIN ' . $documents . ' d ON d.entity_id = s.' . $idColumn . ' WHERE s.status = ?',
                SageStatus::Failed->value
            );
        }
        $rows = $count === 0 ? [] : $connection->fetchAll(
            '(' . implode(') UNION ALL (', $parts) . ') ORDER BY updated_at DESC, entity_id DESC LIMIT '
            . max(1, $limit)
        );
        return [
            'count' => $count,
            'newest' => array_map(static fn (array $row): array => [
                'entity_type' => (string) $row['entity_type'],
                'entity_id' => (int) $row['entity_id'],
                'increment_id' => (string) $row['increment_id'],
                'message' => (string) $row['message'],
                'updated_at' => (string) $row['updated_at'],
            ], $rows),
        ];
    }

    private function grid(string $grid, int $entityId, SageStatus $status, ?string $message): void
    {
        $this->resource->getConnection('sales')->update(
            $this->resource->getTableName($grid, 'sales'),
            ['sage_status' => $status->value, 'sage_status_message' => $message],
            ['entity_id = ?' => $entityId]
        );
    }

    private static function utc(?DateTimeImmutable $at): string
    {
        return ($at ?? new DateTimeImmutable('now'))->setTimezone(new DateTimeZone('UTC'))->format('Y-m-d H:i:s');
    }
}
