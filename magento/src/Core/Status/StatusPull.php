<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

/**
 * Walks Ledger's status feed from the stored cursor and applies each outcome to the local status
 * rows. Only invoices and credit memos have rows (the grids and the view block). A `payment` (the
 * receipt of an invoice.paid, named by the invoice's document key) lands on its invoice's row as
 * the row's payment part: the sink keeps the document's and the payment's latest states apart
 * (each last-writer-wins by the time of the change, see {@see DocumentStatus}), so updates arriving
 * in any order are all applied and none is dropped, and an older one never hides a newer one.
 * Customers, products and documents this store does not know are passed over. The cursor is saved
 * after each page's rows are written, so a failure (thrown to the caller) loses nothing: the next
 * run reads that page again. Stops when the feed says `more: false`.
 */
final class StatusPull
{
    public const SHOWN = ['invoice', 'creditmemo'];

    public function __construct(
        private StatusFeed $feed,
        private StatusSink $sink,
        private DocumentResolver $documents,
        private CursorStore $cursors,
    ) {
    }
    /** @return array{pages: int, applied: int, ignored: int, cursor: ?string, more: bool} */
    public function run(int $limit = 500, int $maxPages = 20): array
    {
        $cursor = $this->cursors->load();
        $result = ['pages' => 0, 'applied' => 0, 'ignored' => 0, 'cursor' => $cursor, 'more' => false];
        while ($result['pages'] < $maxPages) {
            $page = $this->feed->fetch($cursor, $limit);
            $result['pages']++;
            foreach ($page['updates'] as $update) {
                if ($this->apply($update)) {
                    $result['applied']++;
                } else {
                    $result['ignored']++;
                }
            }
            $next = $page['cursor'];
            $moved = $next !== null && $next !== $cursor;
            if ($moved) {
                $this->cursors->save($next);
                $cursor = $next;
            }
            $result['cursor'] = $cursor;
            $result['more'] = $page['more'];
            if (!$page['more'] || !$moved) {
                break;
            }
        }
        return $result;
    }

    private function apply(StatusUpdate $update): bool
    {
        $payment = $update->entityType === 'payment';
        $type = $payment ? 'invoice' : $update->entityType;
        if (!in_array($type, self::SHOWN, true)) {
            return false;
        }
        $document = $update->salesDocument($type);
        $id = $document === null ? null : $this->documents->entityId($type, ...$document);
        if ($id === null) {
            return false;
        }
        $this->sink->apply($type, $id, $update, $payment);
        return true;
    }
}
