<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** The Sage reference a document's status row already has (set when Ledger reported it synced). */
interface StatusReader
{
    public function sageReference(string $entityType, int $entityId): ?string;
}
