<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use DateTimeImmutable;
use Ledger\SageSync\Core\Event\MerchantId;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;

/**
 * What a backfill announces before its events (schemas/events/backfill-started.schema.json), on
 * magento.<merchant>.history.backfill.<id>: the range, the types and how many documents of each it
 * records, so that Ledger can show the run's progress (done of total, rate, time left).
 */
final class BackfillHeader
{
    /**
     * The run's id, the same for the same merchant, range and types: running a stopped backfill
     * again continues the same run (the outbox dedupe keys skip what it recorded already).
     *
     * @param list<string> $types
     */
    public static function id(string $merchantId, string $from, string $to, array $types): string
    {
        sort($types);
        $run = $merchantId . '|' . $from . '|' . $to . '|' . implode(',', $types);
        return 'bf-' . substr(hash('sha256', $run), 0, 16);
    }

    /**
     * @param list<string> $types
     * @param array<string, int> $totals documents per type, canceled ones left out
     */
    public static function message(
        string $merchantId,
        string $backfillId,
        string $from,
        string $to,
        array $types,
        array $totals,
        DateTimeImmutable $startedAt
    ): OutboundMessage {
        MerchantId::assertValid($merchantId);
        if (preg_match(OutboxRecord::BACKFILL_ID, $backfillId) !== 1) {
            throw new \InvalidArgumentException('backfill id ' . $backfillId . ' is not a safe token');
        }
        $body = json_encode([
            'backfill_id' => $backfillId,
            'merchant_id' => $merchantId,
            'from' => $from,
            'to' => $to,
            'types' => array_values($types),
            'totals' => (object) array_map('intval', $totals),
            'started_at' => SnapshotSerializer::rfc3339($startedAt),
        ], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
        // Same id for the same run: a re-run's header replaces the first in Ledger's view.
        $messageId = $backfillId . '-' . $startedAt->format('U');
        return new OutboundMessage(
            $messageId,
            'magento.' . $merchantId . '.history.backfill.' . $backfillId,
            $body,
            ['Nats-Msg-Id' => $messageId]
        );
    }
}
