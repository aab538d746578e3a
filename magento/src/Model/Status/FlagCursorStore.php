<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Status;

use Ledger\SageSync\Core\Status\CursorStore;
use Magento\Framework\FlagManager;

/** The status feed's cursor in Magento's flag table. */
class FlagCursorStore implements CursorStore
{
    public const FLAG = 'ledger_sage_sync_status_cursor';

    public function __construct(private FlagManager $flags)
    {
    }

    public function load(): ?string
    {
        $cursor = $this->flags->getFlagData(self::FLAG);
        if (is_int($cursor)) {
            return (string) $cursor;
        }
        return is_string($cursor) && $cursor !== '' ? $cursor : null;
    }

    public function save(string $cursor): void
    {
        $this->flags->saveFlag(self::FLAG, $cursor);
    }
}
