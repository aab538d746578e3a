<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** Applies a batch of Ledger outcomes to the local status store and returns the new cursor. */
final class StatusPull
{
    public function __construct(private StatusFeed $feed, private StatusSink $sink)
    {
    }

    /** @return array{applied: int, cursor: ?string} */
    public function run(?string $cursor, int $limit = 500): array
    {
        $batch = $this->feed->fetch($cursor, $limit);
        foreach ($batch['updates'] as $update) {
            $this->sink->update(
                $update->entityType,
                $update->entityId,
                $update->status,
                $update->message,
                $update->sageReference
            );
        }
        return ['applied' => count($batch['updates']), 'cursor' => $batch['cursor']];
    }
}
