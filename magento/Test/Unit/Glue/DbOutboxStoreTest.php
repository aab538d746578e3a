<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use DateTimeImmutable;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Outbox\RetryPolicy;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Ledger\SageSync\Model\Status\DbStatusSink;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FakeAdapter;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\FixedSource;
use Ledger\SageSync\Test\Support\NullStore;
use Magento\Framework\App\ResourceConnection;
use PHPUnit\Framework\TestCase;

/** The SQL the outbox and status stores send, against a recording adapter. */
final class DbOutboxStoreTest extends TestCase
{
    private FakeAdapter $db;
    private DbOutboxStore $store;

    protected function setUp(): void
    {
        $this->db = new FakeAdapter();
        $this->store = new DbOutboxStore(new ResourceConnection($this->db));
    }

    private function record(EventType $type = EventType::InvoiceCreated): OutboxRecord
    {
        $recorder = new EventRecorder(new NullStore(), new SnapshotSerializer(), new FixedClock(), new FixedSource());
        return match ($type) {
            EventType::CustomerSaved => $recorder->customer(Documents::b2bCustomer(), 1, 4),
            default => $recorder->invoice($type, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1),
        };
    }

    public function testDocumentInsertIsIgnoredOnDuplicateKey(): void
    {
        $record = $this->record();
        $record->id = null;
        $this->db->rowCounts = [1, 0];
        $this->db->lastId = 41;
        self::assertTrue($this->store->append($record));
        self::assertSame(41, $record->id);
        $again = $this->record();
        $again->id = null;
        self::assertFalse($this->store->append($again), 'duplicate key: nothing written');
        self::assertNull($again->id);

        [, $sql, $bind] = $this->db->log[0];
        self::assertStringStartsWith('INSERT INTO `ledger_sage_outbox` (event_id, event_type, dedupe_key,', $sql);
        self::assertStringEndsWith('ON DUPLICATE KEY UPDATE id = id', $sql);
        self::assertCount(count(DbOutboxStore::INSERT_COLUMNS), $bind);
        $row = array_combine(DbOutboxStore::INSERT_COLUMNS, $bind);
        self::assertSame($record->eventId, $row['event_id']);
        self::assertSame('invoice.created:3301', $row['dedupe_key']);
        self::assertSame('invoice:3301', $row['aggregate_key']);
        self::assertSame('pending', $row['status']);
        self::assertSame('2025-04-02 10:14:12', $row['occurred_at']);
        self::assertSame('71.40', json_decode($row['payload'], true)['invoice']['grand_total']);
        self::assertSame('2.4.7-p3', json_decode($row['source'], true)['magento_version']);
    }

    public function testMasterDataCoalescesWithANewEventId(): void
    {
        $this->store->append($this->record(EventType::CustomerSaved));
        $sql = $this->db->log[0][1];
        self::assertStringContainsString(
            'ON DUPLICATE KEY UPDATE event_id = VALUES(event_id), payload = VALUES(payload)',
            $sql
        );
        self::assertStringContainsString("status = 'pending', attempts = 0", $sql);
    }

    public function testRowRoundTrip(): void
    {
        $record = $this->record(EventType::InvoicePaid);
        $this->store->append($record);
        $row = array_combine(DbOutboxStore::INSERT_COLUMNS, $this->db->log[0][2]) + [
            'id' => '7', 'published_at' => null, 'transport' => null, 'js_stream' => null, 'js_seq' => null,
            'js_duplicate' => '0',
        ];
        $this->db->results = [[$row]];
        [$loaded] = $this->store->due(new DateTimeImmutable('2025-04-02 10:15:00'), 50);
        self::assertSame(7, $loaded->id);
        self::assertSame($record->eventId, $loaded->eventId);
        self::assertSame(EventType::InvoicePaid, $loaded->eventType);
        self::assertSame($record->payload, $loaded->payload);
        self::assertSame($record->source, $loaded->source);
        self::assertEquals($record->occurredAt, $loaded->occurredAt);
        self::assertSame(OutboxStatus::Pending, $loaded->status);
        [, $sql, $bind] = $this->db->ops('fetchAll')[0];
        $where = "status IN ('pending', 'retry') AND next_attempt_at <= ? ORDER BY id LIMIT 50";
        self::assertStringContainsString($where, $sql);
        self::assertSame(['2025-04-02 10:15:00'], $bind);
    }

    public function testPublishedCoalescingRowReleasesItsKey(): void
    {
        $record = $this->record(EventType::CustomerSaved);
        $record->id = 12;
        $ack = new PublishAck('MAGENTO_EVENTS', 99, false, 'nats');
        $this->store->markPublished($record, $ack, new DateTimeImmutable('2025-04-02 10:20:00'));
        [, $table, $update] = $this->db->ops('update')[0];
        self::assertSame('ledger_sage_outbox', $table);
        self::assertSame('published', $update['set']['status']);
        self::assertSame(99, $update['set']['js_seq']);
        self::assertSame('MAGENTO_EVENTS', $update['set']['js_stream']);
        self::assertSame('customer.saved:5120#12', $update['set']['dedupe_key']);
        $where = ['id = ?' => 12, 'event_id = ?' => $record->eventId];
        self::assertSame($where, $update['where'], 'only the row as it was sent');

        $invoice = $this->record();
        $invoice->id = 13;
        $this->store->markPublished($invoice, new PublishAck(null, 5, true, 'https'), new DateTimeImmutable());
        $set = $this->db->ops('update')[1][2]['set'];
        self::assertArrayNotHasKey('dedupe_key', $set, 'document keys stay taken forever');
        self::assertSame(1, $set['js_duplicate']);
    }

    public function testDeadRowIsDeadLetteredInOneTransaction(): void
    {
        $record = $this->record();
        $record->id = 5;
        (new RetryPolicy(1))->fail($record, 'JetStream error 10060', new DateTimeImmutable('2025-04-02 11:00:00'));
        $this->store->markFailed($record);
        self::assertSame(['begin', 'update', 'insert', 'commit'], array_column($this->db->log, 0));
        [, $table, $letter] = $this->db->ops('insert')[0];
        self::assertSame('ledger_sage_dead_letter', $table);
        self::assertSame(5, $letter['outbox_id']);
        self::assertSame('JetStream error 10060', $letter['error']);
    }

    public function testRequeueDeadResolvesTheLetters(): void
    {
        $this->db->rowCounts = [2, 2];
        self::assertSame(2, $this->store->requeueDead([5, 6], new DateTimeImmutable('2025-04-03 09:00:00')));
        [$outbox, $letters] = $this->db->ops('update');
        self::assertSame(['status = ?' => 'dead', 'id IN (?)' => [5, 6]], $outbox[2]['where']);
        self::assertSame(0, $outbox[2]['set']['attempts']);
        self::assertSame(['resolved_at IS NULL', 'outbox_id IN (?)' => [5, 6]], $letters[2]['where']);
    }

    public function testStatusSinkWritesTheStatusRowAndTheGridRow(): void
    {
        $sink = new DbStatusSink(new ResourceConnection($this->db));
        $sink->update('invoice', 3301, SageStatus::Failed, str_repeat('x', 300), 'SI-1045');
        [, $sql, $bind] = $this->db->ops('query')[0];
        self::assertStringStartsWith('INSERT INTO `ledger_sage_invoice_status` (invoice_id, status, message,', $sql);
        self::assertSame([3301, 'failed'], array_slice($bind, 0, 2));
        self::assertSame(255, strlen($bind[2]), 'fits varchar(255)');
        [, $grid, $update] = $this->db->ops('update')[0];
        self::assertSame('sales_invoice_grid', $grid);
        self::assertSame('failed', $update['set']['sage_status']);
        self::assertSame(['entity_id = ?' => 3301], $update['where']);

        $this->db->log = [];
        $sink->update('customer', 5120, SageStatus::Synced, null);
        self::assertSame([], $this->db->log, 'no grid for customers');
    }
}
