<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

use DateTimeImmutable;

/** Where document statuses are kept (the Magento glue: status tables + sales grids). */
interface StatusSink
{
    /**
     * A status the module itself sets (queued, delivery attempts): the chip only.
     *
     * @param DateTimeImmutable|null $at when the state was reached (now when null)
     */
    public function update(
        string $entityType,
        int $entityId,
        SageStatus $status,
        ?string $message,
        ?string $sageReference = null,
        ?DateTimeImmutable $at = null
    ): void;

    /**
     * A change reported by Ledger's feed for the document itself or (`$payment`) for the
     * receipt of an invoice: merged into the document's {@see DocumentStatus} (each part
     * last-writer-wins by time, so order of arrival does not matter) and shown as its chip.
     */
    public function apply(string $entityType, int $entityId, StatusUpdate $update, bool $payment): void;
}
