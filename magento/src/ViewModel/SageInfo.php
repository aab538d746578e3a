<?php

declare(strict_types=1);

namespace Ledger\SageSync\ViewModel;

use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Ledger\SageSync\Model\Status\DbStatusSink;
use Magento\Framework\App\RequestInterface;
use Magento\Framework\View\Element\Block\ArgumentInterface;
use Throwable;

/** Sage status and Ledger events of the invoice or credit memo on its admin view page. */
class SageInfo implements ArgumentInterface
{
    private const PARAMS = ['invoice' => 'invoice_id', 'creditmemo' => 'creditmemo_id'];

    public function __construct(
        private RequestInterface $request,
        private DbStatusSink $status,
        private DbOutboxStore $store,
    ) {
    }

    /**
     * `sage_ref` is Sage's own number of the document (SI-12, SCN-3), `sage_id` its Sage id.
     *
     * @return array{status: string, label: string, message: string, sage_ref: ?string, sage_id: ?string,
     *     updated_at: ?string,
     *     events: list<array{type: string, state: string, attempts: int, when: string, detail: string}>}|null
     */
    public function forDocument(string $entityType): ?array
    {
        $param = self::PARAMS[$entityType] ?? null;
        $id = $param === null ? 0 : (int) $this->request->getParam($param);
        if ($id < 1) {
            return null;
        }
        try {
            $row = $this->status->get($entityType, $id);
            $records = $this->store->forEntity($entityType, $id);
        } catch (Throwable) {
            return null;
        }
        $status = SageStatus::tryFrom((string) ($row['status'] ?? ''));
        $events = [];
        foreach ($records as $record) {
            $published = $record->status === OutboxStatus::Published;
            $events[] = [
                'type' => $record->eventType->value,
                'state' => $record->status->value,
                'attempts' => $record->attempts,
                'when' => ($published ? $record->publishedAt : $record->occurredAt)?->format('Y-m-d H:i:s') . ' UTC',
                'detail' => $published
                    ? ($record->sequence ? 'sequence ' . $record->sequence : 'via ' . $record->transport)
                        . ($record->duplicate ? ' (duplicate)' : '')
                    : (string) $record->lastError,
            ];
        }
        return [
            'status' => $status?->value ?? 'untracked',
            'label' => $status?->label() ?? 'Not sent',
            'message' => (string) ($row['message'] ?? ($records === []
                ? 'This document was not recorded for Ledger (created before the module, or while it was off).'
                : '')),
            'sage_ref' => isset($row['sage_ref']) ? (string) $row['sage_ref'] : null,
            'sage_id' => isset($row['sage_id']) && $row['sage_id'] !== ($row['sage_ref'] ?? null)
                ? (string) $row['sage_id'] : null,
            'updated_at' => isset($row['updated_at']) ? (string) $row['updated_at'] : null,
            'events' => $events,
        ];
    }
}
