<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model;

use WeakMap;

/**
 * Remembers, from *_save_before to *_save_after, which documents are being created.
 *
 * Magento's sales resource models reset isObjectNew() right after the INSERT, before
 * *_save_after runs, so "new" must be captured earlier. A WeakMap keeps nothing alive and
 * writes nothing onto the model's data.
 */
class NewEntityRegistry
{
    private WeakMap $new;

    public function __construct()
    {
        $this->new = new WeakMap();
    }

    public function markNew(object $entity): void
    {
        $this->new[$entity] = true;
    }

    /** True once for an entity marked new; the mark is consumed. */
    public function takeNew(object $entity): bool
    {
        if (!isset($this->new[$entity])) {
            return false;
        }
        unset($this->new[$entity]);
        return true;
    }
}
