<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** Where document statuses are kept (the Magento glue: status tables + sales grids). */
interface StatusSink
{
    public function update(
        string $entityType,
        int $entityId,
        SageStatus $status,
        ?string $message,
        ?string $sageReference = null
    ): void;
}
