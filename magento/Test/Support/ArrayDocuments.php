<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Ledger\SageSync\Core\Status\DocumentResolver;

/** Entity ids by "type:store:increment id". */
final class ArrayDocuments implements DocumentResolver
{
    /** @param array<string, int> $ids */
    public function __construct(public array $ids = [])
    {
    }

    public function entityId(string $entityType, int $storeId, string $incrementId): ?int
    {
        return $this->ids[$entityType . ':' . $storeId . ':' . $incrementId] ?? null;
    }
}
