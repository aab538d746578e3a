<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** One document outcome reported by Ledger (synced with its Sage reference, skipped, failed). */
final class StatusUpdate
{
    public function __construct(
        public readonly string $entityType,
        public readonly int $entityId,
        public readonly SageStatus $status,
        public readonly ?string $message,
        public readonly ?string $sageReference,
    ) {
    }
}
