<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use DateTimeImmutable;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\OutboxStore;
use Ledger\SageSync\Core\Publish\PublishAck;

/** Accepts and forgets everything; tests override the one method they care about. */
class NullStore implements OutboxStore
{
    public function append(OutboxRecord $record): bool
    {
        return true;
    }

    public function due(DateTimeImmutable $now, int $limit): array
    {
        return [];
    }

    public function hasOpenBefore(OutboxRecord $record): bool
    {
        return false;
    }

    public function markPublished(OutboxRecord $record, PublishAck $ack, DateTimeImmutable $at): void
    {
    }

    public function markFailed(OutboxRecord $record): void
    {
    }

    public function savePayload(OutboxRecord $record): void
    {
    }

    public function requeueDead(array $ids, DateTimeImmutable $now): int
    {
        return 0;
    }

    public function countByStatus(): array
    {
        return [];
    }

    public function forEntity(string $entityType, int $entityId): array
    {
        return [];
    }
}
