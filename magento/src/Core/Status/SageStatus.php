<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** The chip on the invoice and credit-memo grids. */
enum SageStatus: string
{
    case Pending = 'pending';
    case Synced = 'synced';
    case Skipped = 'skipped';
    case Failed = 'failed';

    public function label(): string
    {
        return ucfirst($this->value);
    }
}
