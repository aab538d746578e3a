<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** Finds the local entity id of a sales document named by store id and increment id. */
interface DocumentResolver
{
    public function entityId(string $entityType, int $storeId, string $incrementId): ?int;
}
