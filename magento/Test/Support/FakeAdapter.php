<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Magento\Framework\DB\Adapter\AdapterInterface;

/** Records every statement; answers queries from queues the test fills. */
final class FakeAdapter implements AdapterInterface
{
    /** @var list<array{string, mixed, mixed}> [operation, sql or table, bind] */
    public array $log = [];

    /** @var list<int> rowCount() of the next query() results */
    public array $rowCounts = [];

    /** @var list<mixed> results of the next fetch* calls */
    public array $results = [];

    public int $lastId = 0;
    public int $transactions = 0;
    public ?\Throwable $failQueries = null;

    public function query($sql, $bind = [])
    {
        if ($this->failQueries !== null) {
            throw $this->failQueries;
        }
        $this->log[] = ['query', $sql, $bind];
        $count = array_shift($this->rowCounts) ?? 1;
        return new class ($count) {
            public function __construct(private int $count)
            {
            }

            public function rowCount(): int
            {
                return $this->count;
            }
        };
    }

    public function fetchAll($sql, $bind = [], $fetchMode = null)
    {
        $this->log[] = ['fetchAll', $sql, $bind];
        return array_shift($this->results) ?? [];
    }

    public function fetchRow($sql, $bind = [], $fetchMode = null)
    {
        $this->log[] = ['fetchRow', $sql, $bind];
        return array_shift($this->results) ?? false;
    }

    public function fetchOne($sql, $bind = [])
    {
        $this->log[] = ['fetchOne', $sql, $bind];
        return array_shift($this->results) ?? false;
    }

    public function fetchPairs($sql, $bind = [])
    {
        $this->log[] = ['fetchPairs', $sql, $bind];
        return array_shift($this->results) ?? [];
    }

    public function insert($table, array $bind)
    {
        $this->log[] = ['insert', $table, $bind];
        return 1;
    }

    public function update($table, array $bind, $where = '')
    {
        $this->log[] = ['update', $table, ['set' => $bind, 'where' => $where]];
        return array_shift($this->rowCounts) ?? 1;
    }

    public function lastInsertId($tableName = null, $primaryKey = null)
    {
        return (string) $this->lastId;
    }

    public function beginTransaction()
    {
        $this->transactions++;
        $this->log[] = ['begin', null, null];
        return $this;
    }

    public function commit()
    {
        $this->log[] = ['commit', null, null];
        return $this;
    }

    public function rollBack()
    {
        $this->log[] = ['rollback', null, null];
        return $this;
    }

    public function quoteIdentifier($ident, $auto = false)
    {
        return '`' . $ident . '`';
    }

    /** @return list<array{string, mixed, mixed}> */
    public function ops(string $operation): array
    {
        return array_values(array_filter($this->log, static fn (array $op): bool => $op[0] === $operation));
    }
}
