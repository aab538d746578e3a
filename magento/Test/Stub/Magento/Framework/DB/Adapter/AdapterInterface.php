<?php

declare(strict_types=1);

namespace Magento\Framework\DB\Adapter;

/** The subset of Magento's database adapter the module uses. */
interface AdapterInterface
{
    public function query($sql, $bind = []);

    public function fetchAll($sql, $bind = [], $fetchMode = null);

    public function fetchRow($sql, $bind = [], $fetchMode = null);

    public function fetchOne($sql, $bind = []);

    public function fetchPairs($sql, $bind = []);

    public function insert($table, array $bind);

    public function update($table, array $bind, $where = '');

    public function lastInsertId($tableName = null, $primaryKey = null);

    public function beginTransaction();

    public function commit();

    public function rollBack();

    public function quoteIdentifier($ident, $auto = false);
}
