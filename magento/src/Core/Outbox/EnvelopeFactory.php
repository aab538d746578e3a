<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use JsonException;
use Ledger\SageSync\Core\Event\MerchantId;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;

/**
 * Wraps an outbox row's payload in the contract envelope (schemas/events/envelope.schema.json)
 * and adds the NATS headers of schemas/asyncapi.yaml.
 */
final class EnvelopeFactory
{
    public const SCHEMA_VERSION = 1;
    private const TRACEPARENT = '/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/D';

    /** @return array<string, mixed> */
    public function envelope(OutboxRecord $record, string $merchantId): array
    {
        MerchantId::assertValid($merchantId);
        if ($record->payload === null) {
            throw new RejectedException('event ' . $record->eventId . ' has no payload');
        }
        $envelope = [
            'event_id' => $record->eventId,
            'schema_version' => self::SCHEMA_VERSION,
            'event_type' => $record->eventType->value,
            'merchant_id' => $merchantId,
            'website_id' => $record->websiteId,
            'store_id' => $record->storeId,
            'occurred_at' => SnapshotSerializer::rfc3339($record->occurredAt),
            'source' => [
                'module_version' => (string) ($record->source['module_version'] ?? 'unknown'),
                'magento_version' => (string) ($record->source['magento_version'] ?? 'unknown'),
                'magento_edition' => $record->source['magento_edition'] ?? null,
            ],
        ];
        if ($record->backfillId !== null) {
            $envelope['backfill_id'] = $record->backfillId;
        }
        $envelope['payload'] = $record->payload;
        return $envelope;
    }

    public function message(OutboxRecord $record, string $merchantId): OutboundMessage
    {
        $envelope = $this->envelope($record, $merchantId);
        try {
            $body = json_encode(
                $envelope,
                JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION
                    | JSON_INVALID_UTF8_SUBSTITUTE
            );
        } catch (JsonException $e) {
            throw new RejectedException('event ' . $record->eventId . ' is not encodable: ' . $e->getMessage());
        }
        $headers = [
            'Nats-Msg-Id' => $record->eventId,
            'Ledger-Schema-Version' => (string) self::SCHEMA_VERSION,
        ];
        if ($record->traceparent !== null && preg_match(self::TRACEPARENT, $record->traceparent) === 1) {
            $headers['traceparent'] = $record->traceparent;
        }
        $subject = $record->backfillId === null
            ? $record->eventType->subject($merchantId)
            : $record->eventType->historySubject($merchantId);
        return new OutboundMessage($record->eventId, $subject, $body, $headers);
    }
}
