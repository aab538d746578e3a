<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use Ledger\SageSync\Core\Publish\RejectedException;

/**
 * Rebuilds the payload of a row written without one (the snapshot failed inside the save, which
 * must not fail the customer's checkout). Implemented by the Magento glue, which loads the entity.
 */
interface PayloadRebuilder
{
    /**
     * @return array<string, mixed>
     * @throws RejectedException when the entity no longer exists or can never be serialized
     */
    public function rebuild(OutboxRecord $record): array;
}
