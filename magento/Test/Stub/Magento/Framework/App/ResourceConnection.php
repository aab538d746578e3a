<?php

declare(strict_types=1);

namespace Magento\Framework\App;

use Magento\Framework\DB\Adapter\AdapterInterface;

class ResourceConnection
{
    public const DEFAULT_CONNECTION = 'default';

    public function __construct(private AdapterInterface $adapter)
    {
    }

    public function getConnection($resourceName = self::DEFAULT_CONNECTION)
    {
        return $this->adapter;
    }

    public function getTableName($modelEntity, $connectionName = self::DEFAULT_CONNECTION)
    {
        return (string) $modelEntity;
    }
}
