<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

use Ledger\SageSync\Core\Clock;
use Ledger\SageSync\Core\Event\MerchantId;
use Ledger\SageSync\Core\Publish\PublisherInterface;
use Ledger\SageSync\Core\Publish\PublishException;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Core\Status\StatusSink;
use Throwable;

/**
 * Publishes due outbox rows, oldest first, one at a time, waiting for each PubAck.
 *
 * Order per document: a row is held back while an older row of the same document is open
 * (pending, retry or dead), so an invoice's paid event never overtakes its created event.
 * A transport failure (broker unreachable, credentials refused, no stream) stops the run after
 * counting one attempt, so an outage does not burn every row's attempts. Must run single-instance
 * (the Magento glue takes a lock).
 */
final class Relay
{
    public function __construct(
        private OutboxStore $store,
        private PublisherInterface $publisher,
        private EnvelopeFactory $envelopes,
        private RetryPolicy $policy,
        private Clock $clock,
        private ?StatusSink $status = null,
        private ?PayloadRebuilder $rebuilder = null,
    ) {
    }

    /** @param float|null $deadline microtime(true) after which no new row is started */
    public function run(string $merchantId, int $limit, ?float $deadline = null): RelayResult
    {
        MerchantId::assertValid($merchantId);
        $result = new RelayResult();
        $held = [];
        foreach ($this->store->due($this->clock->now(), $limit) as $record) {
            if ($deadline !== null && microtime(true) >= $deadline) {
                $result->stoppedBy = 'time limit';
                break;
            }
            $aggregate = $record->aggregateKey();
            if (isset($held[$aggregate]) || $this->store->hasOpenBefore($record)) {
                $held[$aggregate] = true;
                $result->blocked++;
                continue;
            }
            try {
                $this->ensurePayload($record);
                $ack = $this->publisher->publish($this->envelopes->message($record, $merchantId));
                $this->store->markPublished($record, $ack, $this->clock->now());
                $result->published++;
                if ($ack->duplicate) {
                    $result->duplicates++;
                }
                $this->status(
                    $record,
                    SageStatus::Pending,
                    'Sent to Ledger' . ($ack->sequence > 0 ? ' (stream sequence ' . $ack->sequence . ')' : '')
                        . ', waiting for Sage.'
                );
            } catch (TransportException $e) {
                $this->fail($record, $e->getMessage(), false, $result);
                $result->stoppedBy = $e->getMessage();
                break;
            } catch (RejectedException $e) {
                $held[$aggregate] = true;
                $this->fail($record, $e->getMessage(), true, $result);
            } catch (PublishException $e) {
                $held[$aggregate] = true;
                $this->fail($record, $e->getMessage(), false, $result);
            }
        }
        $this->publisher->close();
        return $result;
    }

    private function ensurePayload(OutboxRecord $record): void
    {
        if ($record->payload !== null) {
            return;
        }
        if ($this->rebuilder === null) {
            throw new RejectedException('no payload and no way to rebuild it');
        }
        try {
            $record->payload = $this->rebuilder->rebuild($record);
        } catch (RejectedException $e) {
            throw $e;
        } catch (Throwable $e) {
            throw new PublishException('rebuilding the snapshot failed: ' . $e->getMessage(), 0, $e);
        }
        $this->store->savePayload($record);
    }

    private function fail(OutboxRecord $record, string $error, bool $permanent, RelayResult $result): void
    {
        $this->policy->fail($record, $error, $this->clock->now(), $permanent);
        $this->store->markFailed($record);
        if ($record->status === OutboxStatus::Dead) {
            $result->dead++;
            $this->status($record, SageStatus::Failed, 'Not delivered to Ledger: ' . $error);
        } else {
            $result->retried++;
            $this->status(
                $record,
                SageStatus::Pending,
                'Delivery attempt ' . $record->attempts . ' failed, retrying: ' . $error
            );
        }
    }

    private function status(OutboxRecord $record, SageStatus $status, string $message): void
    {
        if ($this->status === null) {
            return;
        }
        try {
            $this->status->update($record->entityType, $record->entityId, $status, $message);
        } catch (Throwable) {
            // The grid chip is informative; never let it stop delivery.
        }
    }
}
