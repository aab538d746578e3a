<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

use DateTimeImmutable;

/** Where document statuses are kept (the Magento glue: status tables + sales grids). */
interface StatusSink
{
    /** @param DateTimeImmutable|null $at when the state was reached (now when null) */
    public function update(
        string $entityType,
        int $entityId,
        SageStatus $status,
        ?string $message,
        ?string $sageReference = null,
        ?DateTimeImmutable $at = null
    ): void;
}
