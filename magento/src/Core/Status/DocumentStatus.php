<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

use DateTimeImmutable;
use DateTimeZone;
use Exception;

/**
 * What Ledger's feed said about one invoice or credit memo, kept as two parts: the document's
 * own latest state and, for an invoice, its payment's (a receipt is reported under the
 * invoice's key). Each part is last-writer-wins by the time of the change, so updates may
 * arrive in any order: a payment's before its invoice's is kept (not dropped) and shown with
 * it once the invoice's arrives; an older update never overwrites a newer one of its own
 * part, while the two parts never overwrite each other. The chip and its tooltip are the
 * combination of both ({@see chip()}).
 */
final class DocumentStatus
{
    /**
     * @param array{status: string, text: string, number: ?string, id: ?string, at: ?string}|null $own
     * @param array{status: string, text: string, number: ?string, id: ?string, at: ?string}|null $payment
     */
    public function __construct(
        public readonly ?array $own = null,
        public readonly ?array $payment = null,
    ) {
    }

    /** The parts as stored (JSON); an unreadable or empty value is no parts at all. */
    public static function fromJson(?string $json): self
    {
        $data = $json === null || $json === '' ? null : json_decode($json, true);
        if (!is_array($data)) {
            return new self();
        }
        return new self(self::part($data['own'] ?? null), self::part($data['payment'] ?? null));
    }

    public function toJson(): string
    {
        return (string) json_encode(['own' => $this->own, 'payment' => $this->payment], JSON_UNESCAPED_SLASHES);
    }

    /**
     * The parts with `$update` applied, or null when it is older than what its part already
     * holds (nothing to store). `$payment` says which part it belongs to.
     */
    public function with(StatusUpdate $update, bool $payment): ?self
    {
        $current = $payment ? $this->payment : $this->own;
        $at = $update->at?->setTimezone(new DateTimeZone('UTC'));
        if ($current !== null && $at !== null && $current['at'] !== null) {
            $stored = self::time($current['at']);
            if ($stored !== null && $at < $stored) {
                return null;
            }
        }
        $part = [
            'status' => $update->status->value,
            'text' => $update->describe(),
            'number' => $update->status === SageStatus::Synced ? $update->shownNumber() : null,
            'id' => $update->status === SageStatus::Synced ? $update->sageId : null,
            'at' => $at?->format('Y-m-d\TH:i:s.uP'),
        ];
        return $payment ? new self($this->own, $part) : new self($part, $this->payment);
    }

    /**
     * The chip, its tooltip, the number to show (Sage's own number of the document, never a
     * payment's) and the Sage id.
     *
     * @return array{SageStatus, string, ?string, ?string}
     */
    public function chip(): array
    {
        $own = $this->own;
        $pay = $this->payment;
        $ownStatus = $own === null ? null : (SageStatus::tryFrom($own['status']) ?? SageStatus::Pending);
        $payStatus = $pay === null ? null : (SageStatus::tryFrom($pay['status']) ?? SageStatus::Pending);
        $number = $own['number'] ?? null;
        $id = $own['id'] ?? null;
        if ($pay === null) {
            return [$ownStatus ?? SageStatus::Pending, $own['text'] ?? '', $number, $id];
        }
        $payNote = match ($payStatus) {
            SageStatus::Synced => 'payment posted' . ($pay['number'] === null ? '' : ' as ' . $pay['number']),
            default => 'payment ' . lcfirst($pay['text']),
        };
        if ($own === null) {
            // Only the payment is known so far: a posted receipt means the invoice is in Sage.
            return match ($payStatus) {
                SageStatus::Synced => [SageStatus::Synced, 'In Sage; ' . $payNote, null, null],
                SageStatus::Skipped => [SageStatus::Pending, 'Invoice not reported yet; ' . $payNote, null, null],
                default => [$payStatus, 'Payment: ' . $pay['text'], null, null],
            };
        }
        if ($ownStatus !== SageStatus::Synced) {
            return [$ownStatus, $own['text'] . '; ' . $payNote, $number, $id];
        }
        $waiting = in_array($payStatus, [SageStatus::Pending, SageStatus::Failed], true);
        $status = $waiting ? $payStatus : SageStatus::Synced;
        return [$status, $own['text'] . '; ' . $payNote, $number, $id];
    }

    /** The time of the latest change of either part. */
    public function at(): ?DateTimeImmutable
    {
        $times = array_filter([
            self::time($this->own['at'] ?? null),
            self::time($this->payment['at'] ?? null),
        ]);
        return $times === [] ? null : max($times);
    }

    /** @return array{status: string, text: string, number: ?string, id: ?string, at: ?string}|null */
    private static function part(mixed $value): ?array
    {
        if (!is_array($value) || !is_string($value['status'] ?? null)) {
            return null;
        }
        $text = static fn (mixed $v): ?string => is_string($v) && $v !== '' ? $v : null;
        return [
            'status' => $value['status'],
            'text' => is_string($value['text'] ?? null) ? $value['text'] : '',
            'number' => $text($value['number'] ?? null),
            'id' => $text($value['id'] ?? null),
            'at' => $text($value['at'] ?? null),
        ];
    }

    private static function time(?string $value): ?DateTimeImmutable
    {
        if ($value === null) {
            return null;
        }
        try {
            return new DateTimeImmutable($value);
        } catch (Exception) {
            return null;
        }
    }
}
