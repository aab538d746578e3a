<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Outbox;

use DateTimeImmutable;
use DateTimeZone;
use Ledger\SageSync\Core\Outbox\PayloadHashStore;
use Magento\Framework\App\ResourceConnection;

/**
 * PayloadHashStore in MySQL/MariaDB, on Magento's default connection: the fingerprint is written
 * in the same transaction as the outbox row it describes, so a save rolled back forgets both.
 */
class DbPayloadHashStore implements PayloadHashStore
{
    public const TABLE = 'ledger_sage_payload_hash';

    public function __construct(private ResourceConnection $resource)
    {
    }

    public function last(string $entityType, int $entityId, int $scope): ?string
    {
        $connection = $this->resource->getConnection();
        $select = $connection->select()
            ->from($this->resource->getTableName(self::TABLE), ['payload_hash'])
            ->where('entity_type = ?', $entityType)
            ->where('entity_id = ?', $entityId)
            ->where('scope = ?', $scope);
        $hash = $connection->fetchOne($select);
        return is_string($hash) && $hash !== '' ? $hash : null;
    }

    public function remember(string $entityType, int $entityId, int $scope, string $hash): void
    {
        $connection = $this->resource->getConnection();
        $connection->insertOnDuplicate(
            $this->resource->getTableName(self::TABLE),
            [
                'entity_type' => $entityType,
                'entity_id' => $entityId,
                'scope' => $scope,
                'payload_hash' => $hash,
                'recorded_at' => (new DateTimeImmutable('now', new DateTimeZone('UTC')))->format('Y-m-d H:i:s'),
            ],
            ['payload_hash', 'recorded_at']
        );
    }
}
