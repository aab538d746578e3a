<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Status;

use Ledger\SageSync\Core\Status\DocumentResolver;
use Magento\Framework\App\ResourceConnection;

/** Invoice and credit-memo entity ids by store id and increment id (the feed's document key). */
class DbDocumentResolver implements DocumentResolver
{
    public const TABLES = ['invoice' => 'sales_invoice', 'creditmemo' => 'sales_creditmemo'];

    public function __construct(private ResourceConnection $resource)
    {
    }

    public function entityId(string $entityType, int $storeId, string $incrementId): ?int
    {
        if (!isset(self::TABLES[$entityType])) {
            return null;
        }
        $connection = $this->resource->getConnection('sales');
        $id = $connection->fetchOne(
            'SELECT entity_id FROM '
            . $connection->quoteIdentifier($this->resource->getTableName(self::TABLES[$entityType], 'sales'))
            . ' WHERE increment_id = ? AND store_id = ?',
            [$incrementId, $storeId]
        );
        return is_numeric($id) && (int) $id > 0 ? (int) $id : null;
    }
}
