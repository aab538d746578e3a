<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\CreditmemoEventPolicy;
use Ledger\SageSync\Core\Outbox\InvoiceEventPolicy;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Outbox\RetryPolicy;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\Uuid;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\FixedSource;
use PHPUnit\Framework\TestCase;
use RuntimeException;

final class OutboxTest extends TestCase
{
    private InMemoryOutboxStore $store;
    private FixedClock $clock;
    private EventRecorder $recorder;

    protected function setUp(): void
    {
        $this->store = new InMemoryOutboxStore();
        $this->clock = new FixedClock();
        $this->recorder = new EventRecorder($this->store, new SnapshotSerializer(), $this->clock, new FixedSource());
    }

    public function testInvoiceEventsFromOneSave(): void
    {
        $created = EventType::InvoiceCreated;
        $paid = EventType::InvoicePaid;
        // New card capture or offline method: Magento creates it paid.
        self::assertSame([$created, $paid], InvoiceEventPolicy::events(true, 2, null, true));
        self::assertSame([$created, $paid], InvoiceEventPolicy::events(true, 2, null, false));
        // Authorize only: open at creation, paid at the later capture.
        self::assertSame([$created], InvoiceEventPolicy::events(true, 1, null, false));
        self::assertSame([$paid], InvoiceEventPolicy::events(false, 2, 1, true));
        self::assertSame([$paid], InvoiceEventPolicy::events(false, 2, 1, false));
        // Re-saves (refund marks is_used_for_refund, comments, emails): nothing.
        self::assertSame([], InvoiceEventPolicy::events(false, 2, 2, false));
        self::assertSame([], InvoiceEventPolicy::events(false, 1, 1, false));
        self::assertSame([], InvoiceEventPolicy::events(false, 3, 3, false));
        // Canceled before capture (1 -> 3) or voided after it (2 -> 3): invoice.canceled.
        $canceled = EventType::InvoiceCanceled;
        self::assertSame([$canceled], InvoiceEventPolicy::events(false, 3, 1, false));
        self::assertSame([$canceled], InvoiceEventPolicy::events(false, 3, 2, false));
        // A backfill leaves canceled invoices out and records the others as at creation.
        self::assertSame([], InvoiceEventPolicy::backfill(3));
        self::assertSame([$created, $paid], InvoiceEventPolicy::backfill(2));
        self::assertSame([$created], InvoiceEventPolicy::backfill(1));
    }

    public function testCreditmemoEventsFromOneSave(): void
    {
        self::assertSame([EventType::CreditmemoCreated], CreditmemoEventPolicy::events(true, 1, null));
        self::assertSame([EventType::CreditmemoCreated], CreditmemoEventPolicy::events(true, 2, null));
        self::assertSame([EventType::CreditmemoRefunded], CreditmemoEventPolicy::events(false, 2, 1));
        self::assertSame([EventType::CreditmemoCanceled], CreditmemoEventPolicy::events(false, 3, 1));
        // Re-saves and a refunded memo: nothing.
        self::assertSame([], CreditmemoEventPolicy::events(false, 2, 2));
        self::assertSame([], CreditmemoEventPolicy::events(false, 3, 2));
        self::assertSame([], CreditmemoEventPolicy::events(false, 1, 1));
        self::assertSame([], CreditmemoEventPolicy::backfill(3));
        self::assertSame([EventType::CreditmemoCreated], CreditmemoEventPolicy::backfill(2));
    }

    public function testEventIdIsMintedOnceAndDoubleFiringWritesOnce(): void
    {
        $first = $this->recorder->invoice(
            EventType::InvoiceCreated,
            Documents::ukCardInvoice(),
            Documents::ukCardOrder(),
            1
        );
        $second = $this->recorder->invoice(
            EventType::InvoiceCreated,
            Documents::ukCardInvoice(),
            Documents::ukCardOrder(),
            1
        );
        self::assertTrue($first->written);
        self::assertFalse($second->written, 'the second firing was a no-op');
        $rows = $this->store->all();
        self::assertCount(1, $rows);
        self::assertTrue(Uuid::isV4($rows[0]->eventId));
        self::assertSame($first->eventId, $rows[0]->eventId, 'the first snapshot and id win');
        self::assertNotSame($second->eventId, $rows[0]->eventId);
        self::assertSame('invoice.created:3301', $rows[0]->dedupeKey);
        self::assertSame(OutboxStatus::Pending, $rows[0]->status);
    }

    public function testPaidIsItsOwnRowAfterCreated(): void
    {
        $this->recorder->invoice(EventType::InvoiceCreated, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1);
        $this->recorder->invoice(EventType::InvoicePaid, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1);
        $this->recorder->invoice(EventType::InvoicePaid, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1);
        $rows = $this->store->all();
        self::assertSame(['invoice.created:3301', 'invoice.paid:3301'], [$rows[0]->dedupeKey, $rows[1]->dedupeKey]);
        self::assertLessThan($rows[1]->id, $rows[0]->id);
        self::assertSame('invoice:3301', $rows[1]->aggregateKey());
    }

    public function testSnapshotFailureStillWritesARowWithoutPayload(): void
    {
        $order = Documents::ukCardOrder();
        unset($order['payment']);
        $record = $this->recorder->invoice(EventType::InvoiceCreated, Documents::ukCardInvoice(), $order, 1);
        self::assertNull($record->payload);
        self::assertStringContainsString('no payment method', (string) $record->lastError);
        self::assertCount(1, $this->store->all());
    }

    public function testAFailingStoreFailsTheSave(): void
    {
        $store = new class extends \Ledger\SageSync\Test\Support\NullStore {
            public function append(\Ledger\SageSync\Core\Outbox\OutboxRecord $record): bool
            {
                throw new RuntimeException('Duplicate entry? table missing? disk full?');
            }
        };
        $recorder = new EventRecorder($store, new SnapshotSerializer(), $this->clock, new FixedSource());
        $this->expectException(RuntimeException::class);
        $recorder->creditmemo(Documents::ukCreditmemo(), Documents::ukCardOrder(), 1);
    }

    public function testCustomerSavesCoalesceWhileUnpublished(): void
    {
        $customer = Documents::b2bCustomer();
        $this->recorder->customer($customer, 1, 4);
        $customer['lastname'] = 'Martel-Roux';
        $this->clock->advance(5);
        $second = $this->recorder->customer($customer, 1, 4);
        $rows = $this->store->all();
        self::assertCount(1, $rows);
        self::assertSame('Martel-Roux', $rows[0]->payload['customer']['lastname'], 'latest state wins');
        self::assertSame($second->eventId, $rows[0]->eventId, 'the newer state is a new event');
        self::assertTrue($second->written);
    }

    public function testCoalescingIntoAnAttemptedRowMintsANewEventId(): void
    {
        $first = $this->recorder->customer(Documents::b2bCustomer(), 1, 4);
        $row = $this->store->all()[0];
        (new RetryPolicy())->fail($row, 'timeout', $this->clock->now());
        $this->store->markFailed($row);
        $this->recorder->customer(Documents::b2bCustomer(), 1, 4);
        $rows = $this->store->all();
        self::assertCount(1, $rows);
        self::assertNotSame($first->eventId, $rows[0]->eventId, 'the broker may have kept the old id');
        self::assertSame(0, $rows[0]->attempts);
        self::assertSame(OutboxStatus::Pending, $rows[0]->status);
    }

    public function testProductsAreKeyedPerStoreScope(): void
    {
        $product = Documents::products()['simple'];
        $this->recorder->product($product, 0, 0);
        $this->recorder->product($product, 1, 1);
        self::assertSame(
            ['product.saved:310:0', 'product.saved:310:1'],
            array_map(static fn ($r) => $r->dedupeKey, $this->store->all())
        );
    }

    public function testBackoffAndDeadAfterMaxAttempts(): void
    {
        $policy = new RetryPolicy(4, 60, 300);
        self::assertSame([60, 120, 240, 300, 300], array_map([$policy, 'delaySeconds'], [1, 2, 3, 4, 5]));
        $record = $this->recorder->creditmemo(Documents::ukCreditmemo(), Documents::ukCardOrder(), 1);
        $now = $this->clock->now();
        foreach ([1 => 60, 2 => 120, 3 => 240] as $attempt => $delay) {
            $policy->fail($record, 'broker down', $now);
            self::assertSame(OutboxStatus::Retry, $record->status);
            self::assertSame($attempt, $record->attempts);
            self::assertSame($delay, $record->nextAttemptAt->getTimestamp() - $now->getTimestamp());
        }
        $policy->fail($record, 'broker down', $now);
        self::assertSame(OutboxStatus::Dead, $record->status);
        self::assertSame(4, $record->attempts);

        $fresh = $this->recorder->invoice(
            EventType::InvoiceCreated,
            Documents::bundleInvoice(),
            Documents::bundleOrder(),
            1
        );
        $policy->fail($fresh, 'contract violation', $now, true);
        self::assertSame(OutboxStatus::Dead, $fresh->status, 'permanent errors do not wait');
    }
}
