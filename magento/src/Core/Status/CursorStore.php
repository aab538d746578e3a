<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/** Where the status feed's cursor is kept between runs (the Magento glue: the flag table). */
interface CursorStore
{
    public function load(): ?string;

    public function save(string $cursor): void;
}
