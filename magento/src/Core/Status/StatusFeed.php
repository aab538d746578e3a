<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/**
 * Ledger's per-document outcomes, read from a cursor. The transport (a NATS pull consumer or an
 * HTTPS endpoint of the gateway) is not part of the contract yet; until it is, NullStatusFeed.
 */
interface StatusFeed
{
    /** @return array{updates: list<StatusUpdate>, cursor: ?string} */
    public function fetch(?string $cursor, int $limit): array;
}
