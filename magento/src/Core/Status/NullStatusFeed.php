<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** No status feed configured: documents stay "Pending" (sent) or "Failed" (not delivered). */
final class NullStatusFeed implements StatusFeed
{
    public function fetch(?string $cursor, int $limit): array
    {
        return ['updates' => [], 'cursor' => $cursor, 'more' => false];
    }
}
