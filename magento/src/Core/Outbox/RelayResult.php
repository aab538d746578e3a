<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

/** What one relay run did. */
final class RelayResult
{
    public int $published = 0;
    public int $duplicates = 0;
    public int $retried = 0;
    public int $dead = 0;
    public int $blocked = 0;
    public ?string $stoppedBy = null;

    public function summary(): string
    {
        $text = sprintf(
            'published %d (%d duplicate), retry %d, dead %d, waiting behind an earlier event %d',
            $this->published,
            $this->duplicates,
            $this->retried,
            $this->dead,
            $this->blocked
        );
        return $this->stoppedBy === null ? $text : $text . '; stopped: ' . $this->stoppedBy;
    }
}
