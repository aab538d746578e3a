<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

use DateTimeImmutable;

/**
 * One document outcome reported by Ledger's status feed: the entity kind (invoice, creditmemo,
 * payment, customer, product), its Magento document key ("invoice:<store id>:<increment id>"),
 * the state, and what goes with it: Sage's own number (SI-12, SCN-3; a payment's name in Sage),
 * the Sage id and reference when synced, the reason code and its human-readable detail when
 * skipped or failed, and the time of the change.
 */
final class StatusUpdate
{
    public function __construct(
        public readonly string $entityType,
        public readonly string $documentKey,
        public readonly SageStatus $status,
        public readonly ?string $message = null,
        public readonly ?string $sageReference = null,
        public readonly ?string $code = null,
        public readonly ?DateTimeImmutable $at = null,
        public readonly ?string $detail = null,
        public readonly ?string $sageNumber = null,
        public readonly ?string $sageId = null,
    ) {
    }

    /**
     * @param string|null $kind the key's kind when it differs from the entity (a payment's key
     *     is its invoice's, "invoice:<store id>:<increment id>")
     * @return array{int, string}|null store id and increment id of a sales document key
     */
    public function salesDocument(?string $kind = null): ?array
    {
        $parts = explode(':', $this->documentKey, 3);
        $kind ??= $this->entityType;
        if (count($parts) !== 3 || $parts[0] !== $kind || preg_match('/^\d+$/', $parts[1]) !== 1) {
            return null;
        }
        return $parts[2] === '' ? null : [(int) $parts[1], $parts[2]];
    }

    /** What the merchant looks for in Sage: its own number, else the reference, else the id. */
    public function shownNumber(): ?string
    {
        return $this->sageNumber ?? $this->sageReference ?? $this->sageId;
    }

    /** The tooltip of the grid chip and the detail line of the view block. */
    public function describe(): string
    {
        $detail = $this->detail ?? $this->message;
        $detail = $detail === null || trim($detail) === '' ? '' : trim($detail);
        $number = $this->shownNumber();
        $text = match ($this->status) {
            SageStatus::Synced => $number === null ? 'In Sage' : 'In Sage as ' . $number,
            SageStatus::Skipped => 'Not synced on purpose: ' . ($this->code ?? 'no reason given'),
            SageStatus::Failed => 'Sync failed: ' . ($this->code ?? 'unknown error'),
            SageStatus::Pending => 'Received by Ledger, not in Sage yet'
                . ($this->code === null ? '' : ' (' . $this->code . ')'),
        };
        if ($this->status === SageStatus::Synced) {
            // Only a credit memo's settlement comes as a synced detail ("refunded 24.00 GBP",
            // "allocated 30.00 GBP to the invoice; 15.00 GBP left on account").
            $settled = $this->detail === null ? '' : trim($this->detail);
            return $settled === '' ? $text : $text . ' - ' . $settled;
        }
        return $detail === '' ? $text : $text . ' - ' . $detail;
    }
}
