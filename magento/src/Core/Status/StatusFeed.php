<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

use Ledger\SageSync\Core\Publish\TransportException;

/**
 * Ledger's per-document outcomes, read page by page from a cursor (HttpsStatusFeed: the
 * gateway's GET /v1/status). `cursor` is where the next page starts, `more` whether changes
 * are already waiting after it.
 */
interface StatusFeed
{
    /**
     * @return array{updates: list<StatusUpdate>, cursor: ?string, more: bool}
     * @throws TransportException when the page could not be read (nothing was consumed)
     */
    public function fetch(?string $cursor, int $limit): array;
}
