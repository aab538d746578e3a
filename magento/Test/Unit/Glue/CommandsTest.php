<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use DateTimeImmutable;
use Ledger\SageSync\Console\Command\Backfill;
use Ledger\SageSync\Console\Command\OutboxStatus;
use Ledger\SageSync\Console\Command\Publish;
use Ledger\SageSync\Console\Command\RetryDead;
use Ledger\SageSync\Core\Outbox\BackfillHeader;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\RelayResult;
use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Publish\PublisherInterface;
use Ledger\SageSync\Model\Outbox\PublisherFactory;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Ledger\SageSync\Model\Outbox\RelayRunner;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\Console;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\Glue;
use Ledger\SageSync\Test\Support\Models;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Model\Outbox\EntityRebuilder;
use Ledger\SageSync\Model\Recorder;
use Ledger\SageSync\Model\Snapshot\CaptureTime;
use Ledger\SageSync\Test\Support\FixedSource;
use Ledger\SageSync\Test\Support\StubStores;
use Ledger\SageSync\Test\Support\TaxData;
use Magento\Catalog\Api\ProductRepositoryInterface;
use Magento\Customer\Model\CustomerFactory;
use Magento\Sales\Api\CreditmemoRepositoryInterface;
use Magento\Sales\Api\Data\TransactionInterface;
use Magento\Sales\Api\InvoiceRepositoryInterface;
use Magento\Sales\Api\TransactionRepositoryInterface;
use Magento\Catalog\Model\ResourceModel\Product\CollectionFactory as Products;
use Magento\Customer\Model\ResourceModel\Customer\CollectionFactory as Customers;
use Magento\Sales\Model\ResourceModel\Order\Creditmemo\CollectionFactory as Creditmemos;
use Magento\Sales\Model\ResourceModel\Order\Invoice\CollectionFactory as Invoices;
use PHPUnit\Framework\TestCase;

final class CommandsTest extends TestCase
{
    public function testNamesAndOptions(): void
    {
        $glue = new Glue();
        $store = $this->createMock(DbOutboxStore::class);
        $commands = [
            new OutboxStatus($store, $glue->config),
            new RetryDead($store, new FixedClock()),
            new Publish($this->createMock(RelayRunner::class)),
            new Backfill($glue->recorder, new Invoices(), new Creditmemos(), new Customers(), new Products()),
        ];
        self::assertSame(
            ['ledger:outbox:status', 'ledger:outbox:retry-dead', 'ledger:outbox:publish', 'ledger:backfill'],
            array_map(static fn ($c) => $c->getName(), $commands)
        );
        self::assertSame(['from', 'to', 'type'], array_keys($commands[3]->options));
    }

    public function testStatusListsCountsAndDeadLetters(): void
    {
        $glue = new Glue();
        $store = $this->createMock(DbOutboxStore::class);
        $store->method('countByStatus')->willReturn(['pending' => 3, 'retry' => 0, 'published' => 120, 'dead' => 1]);
        $store->method('unresolvedDeadLetters')->willReturn(1);
        $store->method('deadLetters')->willReturn([[
            'outbox_id' => 77, 'event_id' => 'e', 'event_type' => 'invoice.paid', 'dedupe_key' => 'invoice.paid:3301',
            'attempts' => 12, 'error' => 'no JetStream stream stores subject', 'created_at' => '2025-04-03 01:00:00',
        ]]);
        $console = new Console(['dead' => true]);
        self::assertSame(0, (new OutboxStatus($store, $glue->config))->run($console, $console));
        self::assertStringContainsString('Not paired with Ledger: generate a pairing code', $console->output);
        self::assertMatchesRegularExpression('/published\s+120/', $console->output);
        self::assertStringContainsString('Unresolved dead letters: 1', $console->output);
        self::assertStringContainsString('#77 invoice.paid invoice.paid:3301, 12 attempts', $console->output);
    }

    public function testRetryDead(): void
    {
        $store = $this->createMock(DbOutboxStore::class);
        $store->expects(self::once())->method('requeueDead')
            ->with([77, 78], self::isInstanceOf(DateTimeImmutable::class))->willReturn(2);
        $console = new Console(['id' => ['77', '78']]);
        self::assertSame(0, (new RetryDead($store, new FixedClock()))->run($console, $console));
        self::assertStringContainsString('2 event(s) requeued', $console->output);

        $bad = new Console(['id' => ['77; DROP TABLE']]);
        self::assertSame(1, (new RetryDead($store, new FixedClock()))->run($bad, $bad));
    }

    public function testPublishReportsTheRun(): void
    {
        $result = new RelayResult();
        $result->published = 3;
        $runner = $this->createMock(RelayRunner::class);
        $runner->method('run')->willReturn($result);
        $console = new Console(['limit' => '10']);
        self::assertSame(0, (new Publish($runner))->run($console, $console));
        self::assertStringContainsString('published 3', $console->output);
    }

    public function testBackfillRecordsOnceAndIsIdempotent(): void
    {
        $glue = new Glue();
        $invoices = new Invoices();
        $invoices->items = [
            Models::invoice(Documents::ukCardInvoice(), Models::order(Documents::ukCardOrder())),
            Models::invoice(Documents::bundleInvoice(), Models::order(Documents::bundleOrder())),
        ];
        $creditmemos = new Creditmemos();
        $creditmemos->items = [Models::creditmemo(Documents::ukCreditmemo(), Models::order(Documents::ukCardOrder()))];
        $command = new Backfill($glue->recorder, $invoices, $creditmemos, new Customers(), new Products());

        $console = new Console(['from' => '2025-04-01', 'to' => '2025-04-30', 'type' => 'invoice,creditmemo']);
        self::assertSame(0, $command->run($console, $console));
        self::assertSame(
            ['created_at' => ['from' => '2025-04-01 00:00:00', 'to' => '2025-04-30 23:59:59']],
            $invoices->last->filters
        );
        $keys = ['invoice.created:3301', 'invoice.paid:3301', 'invoice.created:3420', 'invoice.paid:3420',
            'creditmemo.created:1207'];
        self::assertSame($keys, $glue->keys());
        self::assertMatchesRegularExpression(
            '#invoice: 2/2 \(100%\), [0-9.]+/s, about 0 s left#',
            $console->output
        );
        self::assertMatchesRegularExpression('#creditmemo: 1/1 \(100%\)#', $console->output);
        $occurred = $glue->outbox->all()[0]->occurredAt->format(DATE_ATOM);
        self::assertSame('2025-04-02T10:14:11+00:00', $occurred, 'the time of the document');

        $again = new Console(['from' => '2025-04-01', 'to' => '2025-04-30', 'type' => 'invoice,creditmemo']);
        self::assertSame(0, $command->run($again, $again));
        self::assertSame($keys, $glue->keys(), 'running it twice adds nothing');
    }

    public function testBackfillIsHistoryAndAnnouncesItsTotals(): void
    {
        $glue = new Glue();
        $glue->settings->values['ledger_sage_sync/general/merchant_id'] = 'hartley-goods';
        $canceledInvoice = Documents::bundleInvoice();
        $canceledInvoice['state'] = '3';
        $invoices = new Invoices();
        $invoices->items = [
            Models::invoice(Documents::ukCardInvoice(), Models::order(Documents::ukCardOrder())),
            Models::invoice($canceledInvoice, Models::order(Documents::bundleOrder())),
        ];
        $creditmemos = new Creditmemos();
        $creditmemos->items = [Models::creditmemo(Documents::ukCreditmemo(), Models::order(Documents::ukCardOrder()))];
        $sent = [];
        $publisher = $this->createMock(PublisherInterface::class);
        $publisher->method('publish')->willReturnCallback(function (OutboundMessage $m) use (&$sent) {
            $sent[] = $m;
            return new PublishAck('MAGENTO_EVENTS', 1, false, 'nats');
        });
        $publishers = $this->createMock(PublisherFactory::class);
        $publishers->method('create')->willReturn($publisher);
        $command = new Backfill(
            $glue->recorder,
            $invoices,
            $creditmemos,
            new Customers(),
            new Products(),
            $publishers,
            $glue->config
        );

        $console = new Console(['from' => '2025-04-01', 'to' => '2025-04-30', 'type' => 'invoice,creditmemo']);
        self::assertSame(0, $command->run($console, $console));
        $id = BackfillHeader::id('hartley-goods', '2025-04-01', '2025-04-30', ['creditmemo', 'invoice']);
        self::assertMatchesRegularExpression('/^bf-[0-9a-f]{16}$/', $id);
        // The header: one invoice (the canceled one left out) and one credit memo.
        self::assertCount(1, $sent);
        self::assertSame('magento.hartley-goods.history.backfill.' . $id, $sent[0]->subject);
        $header = json_decode($sent[0]->body, true);
        self::assertSame(['invoice' => 1, 'creditmemo' => 1], $header['totals']);
        self::assertSame(['invoice', 'creditmemo'], $header['types']);
        self::assertSame(['2025-04-01', '2025-04-30'], [$header['from'], $header['to']]);
        self::assertStringContainsString('Backfill ' . $id . ': 2 document(s) to record', $console->output);
        self::assertStringContainsString('bar 2/2 invoice: 2/2 (100%)', $console->output);
        // Every event is history, marked with the run's id, on the history subject.
        $records = $glue->outbox->all();
        self::assertCount(3, $records);
        foreach ($records as $record) {
            self::assertSame($id, $record->backfillId);
            $message = (new EnvelopeFactory())->message($record, 'hartley-goods');
            self::assertStringStartsWith('magento.hartley-goods.history.', $message->subject);
            self::assertSame($id, json_decode($message->body, true)['backfill_id']);
        }
        // The same run again: same id, nothing recorded twice.
        $again = new Console(['from' => '2025-04-01', 'to' => '2025-04-30', 'type' => 'creditmemo,invoice']);
        self::assertSame(0, $command->run($again, $again));
        self::assertStringContainsString('Backfill ' . $id, $again->output);
        self::assertCount(3, $glue->outbox->all());
    }

    public function testBackfillProgressLine(): void
    {
        self::assertSame(
            'invoice: 400/1250 (32%), 100.0/s, about 9 s left',
            Backfill::progress('invoice', 400, 1250, 4.0)
        );
        self::assertSame('product: 0/0 (100%), 0.0/s, about 0 s left', Backfill::progress('product', 0, 0, 0.0));
    }

    public function testBackfillLeavesCanceledDocumentsOut(): void
    {
        $glue = new Glue();
        $canceledInvoice = Documents::bundleInvoice();
        $canceledInvoice['state'] = '3';
        $invoices = new Invoices();
        $invoices->items = [
            Models::invoice(Documents::ukCardInvoice(), Models::order(Documents::ukCardOrder())),
            Models::invoice($canceledInvoice, Models::order(Documents::bundleOrder())),
        ];
        $canceledMemo = Documents::ukCreditmemo();
        $canceledMemo['state'] = '3';
        $creditmemos = new Creditmemos();
        $creditmemos->items = [Models::creditmemo($canceledMemo, Models::order(Documents::ukCardOrder()))];
        $command = new Backfill($glue->recorder, $invoices, $creditmemos, new Customers(), new Products());

        $console = new Console(['from' => '2025-04-01', 'to' => '2025-04-30', 'type' => 'invoice,creditmemo']);
        self::assertSame(0, $command->run($console, $console));
        self::assertSame(['invoice.created:3301', 'invoice.paid:3301'], $glue->keys());
        $invoiceLine = 'invoice: 1 recorded or already there, 1 canceled left out';
        self::assertStringContainsString($invoiceLine, $console->output);
        $memoLine = 'creditmemo: 0 recorded or already there, 1 canceled left out';
        self::assertStringContainsString($memoLine, $console->output);
    }

    public function testBackfillRejectsBadInput(): void
    {
        $glue = new Glue();
        $command = new Backfill($glue->recorder, new Invoices(), new Creditmemos(), new Customers(), new Products());
        $cases = [
            ['from' => '2025-02-30', 'to' => '2025-03-01', 'type' => 'invoice'],
            ['from' => '2025-03-02', 'to' => '2025-03-01', 'type' => 'invoice'],
            ['from' => '2025-03-01', 'to' => '2025-03-02', 'type' => 'orders'],
            ['to' => '2025-03-02', 'type' => 'invoice'],
        ];
        foreach ($cases as $options) {
            $console = new Console($options);
            self::assertSame(1, $command->run($console, $console), json_encode($options));
        }
        self::assertSame([], $glue->keys());
    }

    public function testBackfillDatesAPaymentAtItsCapture(): void
    {
        // Authorised at checkout, invoiced on 2 April (10:14:11), captured on 5 April: the
        // capture transaction bt_9q2x7m of payment 4410 (order 4410) was made at 16:30:00.
        $transactions = $this->createMock(TransactionRepositoryInterface::class);
        $transactions->method('getByTransactionId')->willReturnCallback(
            function ($txnId, $paymentId, $orderId) {
                if ($txnId !== 'bt_9q2x7m' || $paymentId !== 4410 || $orderId !== 4410) {
                    return false;
                }
                $transaction = $this->createMock(TransactionInterface::class);
                $transaction->method('getCreatedAt')->willReturn('2025-04-05 16:30:00');
                return $transaction;
            }
        );
        $glue = new Glue();
        $recorder = new Recorder(
            new EventRecorder($glue->outbox, new SnapshotSerializer(), $glue->clock, new FixedSource()),
            TaxData::forFixtures()->extractor(),
            new StubStores(),
            $glue,
            $glue->config,
            $glue->logger,
            new CaptureTime($transactions),
        );
        $card = Models::invoice(Documents::ukCardInvoice(), Models::order(Documents::ukCardOrder()));
        // The bundle invoice is paid by bank transfer: no transaction, paid when invoiced.
        $cheque = Models::invoice(Documents::bundleInvoice(), Models::order(Documents::bundleOrder()));
        $invoices = new Invoices();
        $invoices->items = [$card, $cheque];
        $command = new Backfill($recorder, $invoices, new Creditmemos(), new Customers(), new Products());
        $console = new Console(['from' => '2025-04-01', 'to' => '2025-04-30', 'type' => 'invoice']);
        self::assertSame(0, $command->run($console, $console));

        $rows = [];
        foreach ($glue->outbox->all() as $row) {
            $rows[$row->dedupeKey] = $row;
        }
        self::assertSame(
            ['invoice.created:3301', 'invoice.paid:3301', 'invoice.created:3420', 'invoice.paid:3420'],
            array_keys($rows)
        );
        self::assertSame('2025-04-02T10:14:11+00:00', $rows['invoice.created:3301']->occurredAt->format(DATE_ATOM));
        self::assertSame('2025-04-05T16:30:00+00:00', $rows['invoice.paid:3301']->occurredAt->format(DATE_ATOM));
        self::assertSame('2025-04-05T16:30:00Z', $rows['invoice.paid:3301']->payload['payment']['paid_at']);
        $chequeCreated = $rows['invoice.created:3420']->occurredAt->format(DATE_ATOM);
        self::assertSame($chequeCreated, $rows['invoice.paid:3420']->occurredAt->format(DATE_ATOM));

        // A payload rebuilt on publish (the snapshot failed when recorded) keeps the capture.
        $repository = $this->createMock(InvoiceRepositoryInterface::class);
        $repository->method('get')->willReturn($card);
        $rebuilder = new EntityRebuilder(
            $repository,
            $this->createMock(CreditmemoRepositoryInterface::class),
            new CustomerFactory(),
            $this->createMock(ProductRepositoryInterface::class),
            TaxData::forFixtures()->extractor(),
            new SnapshotSerializer()
        );
        $rebuilt = $rebuilder->rebuild($rows['invoice.paid:3301']);
        self::assertSame('2025-04-05T16:30:00Z', $rebuilt['payment']['paid_at']);
        self::assertSame(EventType::InvoicePaid, $rows['invoice.paid:3301']->eventType);
    }
}
