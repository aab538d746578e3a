<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\InMemoryPayloadHashStore;
use Ledger\SageSync\Core\Outbox\PayloadHash;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\FixedSource;
use PHPUnit\Framework\TestCase;

/** A customer or product save that changes nothing the contract carries records no event. */
final class UnchangedSaveTest extends TestCase
{
    private InMemoryOutboxStore $store;
    private FixedClock $clock;
    private InMemoryPayloadHashStore $hashes;
    private EventRecorder $recorder;

    protected function setUp(): void
    {
        $this->store = new InMemoryOutboxStore();
        $this->clock = new FixedClock();
        $this->hashes = new InMemoryPayloadHashStore();
        $this->recorder = new EventRecorder(
            $this->store,
            new SnapshotSerializer(),
            $this->clock,
            new FixedSource(),
            $this->hashes
        );
    }

    /** Publishes every open row, so that the next recorded save would be a row of its own. */
    private function publishAll(): void
    {
        foreach ($this->store->all() as $i => $row) {
            $ack = new PublishAck('MAGENTO_EVENTS', $i + 1, false, 'nats');
            $this->store->markPublished($row, $ack, $this->clock->now());
        }
    }

    public function testTheCustomerSavedAgainWithAnOrderRecordsNothing(): void
    {
        $customer = Documents::b2bCustomer();
        self::assertTrue($this->recorder->customer($customer, 1, 4)->written);
        $this->publishAll();
        // The address saved again with the next order: only Magento's timestamp moved.
        $customer['updated_at'] = '2025-04-16 08:30:00';
        $this->clock->advance(60);
        $again = $this->recorder->customer($customer, 1, 4);
        self::assertFalse($again->written);
        self::assertCount(1, $this->store->all(), 'no second row');
    }

    public function testAChangedAddressIsRecorded(): void
    {
        $customer = Documents::b2bCustomer();
        $this->recorder->customer($customer, 1, 4);
        $this->publishAll();
        $customer['addresses'][0]['postcode'] = '44100';
        $changed = $this->recorder->customer($customer, 1, 4);
        self::assertTrue($changed->written);
        self::assertCount(2, $this->store->all());
        self::assertSame('44100', $this->store->all()[1]->payload['customer']['addresses'][0]['postcode']);
        // And back to the first address: a change again, recorded again.
        $this->publishAll();
        $customer['addresses'][0]['postcode'] = '44000';
        self::assertTrue($this->recorder->customer($customer, 1, 4)->written);
        self::assertCount(3, $this->store->all());
    }

    public function testProductsCompareWithinTheirStoreScope(): void
    {
        $product = Documents::products()['simple'];
        self::assertTrue($this->recorder->product($product, 0, 0)->written);
        // The same product in store view 1 was never recorded there: recorded.
        self::assertTrue($this->recorder->product($product, 1, 1)->written);
        $this->publishAll();
        self::assertFalse($this->recorder->product($product, 0, 0)->written);
        self::assertFalse($this->recorder->product($product, 1, 1)->written);
        $product['name'] .= ' (new)';
        self::assertTrue($this->recorder->product($product, 0, 0)->written);
        self::assertCount(3, $this->store->all());
    }

    public function testDocumentsAreNeverSkipped(): void
    {
        $invoice = Documents::ukCardInvoice();
        $order = Documents::ukCardOrder();
        $type = \Ledger\SageSync\Core\Event\EventType::InvoiceCreated;
        self::assertTrue($this->recorder->invoice($type, $invoice, $order, 1)->written);
        self::assertNull($this->hashes->last('invoice', (int) $invoice['entity_id'], 0));
    }

    public function testWithoutAHashStoreEverySaveIsRecorded(): void
    {
        $recorder = new EventRecorder($this->store, new SnapshotSerializer(), $this->clock, new FixedSource());
        $customer = Documents::b2bCustomer();
        $recorder->customer($customer, 1, 4);
        $this->publishAll();
        self::assertTrue($recorder->customer($customer, 1, 4)->written);
        self::assertCount(2, $this->store->all());
    }

    public function testTheFingerprintIgnoresKeyOrderAndUpdatedAtOnly(): void
    {
        $a = ['customer' => ['id' => 7, 'email' => 'a@example.com', 'updated_at' => '2025-01-01 00:00:00']];
        $b = ['customer' => ['email' => 'a@example.com', 'id' => 7, 'updated_at' => '2025-02-01 00:00:00']];
        $c = ['customer' => ['email' => 'b@example.com', 'id' => 7]];
        self::assertSame(PayloadHash::of($a), PayloadHash::of($b));
        self::assertNotSame(PayloadHash::of($a), PayloadHash::of($c));
        // SHA-256 hex of {"customer":{"email":"a@example.com","id":7}}, worked out with sha256sum.
        self::assertSame(
            'bffa4ce85517862667d65f0e60b68a27177ab5af09cd7e8c1d4aa215b1d46fcc',
            PayloadHash::of($a)
        );
    }
}
