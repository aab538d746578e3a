<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Contract;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\Uuid;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\FixedSource;
use PHPUnit\Framework\TestCase;

/**
 * Produces one envelope per realistic case with the module's own recorder and serializer and
 * writes them to $LEDGER_CONTRACT_DIR. dev/test.sh then hands every file to the Rust contract
 * (`cargo run -p ledgerctl -- validate`), and checks that the file in negative/ is refused.
 */
final class ContractSnapshotTest extends TestCase
{
    public function testWriteEnvelopesForTheRustContract(): void
    {
        $dir = getenv('LEDGER_CONTRACT_DIR') ?: sys_get_temp_dir() . '/ledger-contract-' . getmypid();
        @mkdir($dir . '/negative', 0777, true);

        $store = new InMemoryOutboxStore();
        $clock = new FixedClock('2025-04-02 10:14:12');
        $recorder = new EventRecorder($store, new SnapshotSerializer(), $clock, new FixedSource());
        $cases = [];
        $case = static function (string $name, OutboxRecord $record) use (&$cases): void {
            self::assertNotNull($record->payload, $name . ': ' . $record->lastError);
            $cases[$name] = $record;
        };

        $case('uk-card', $recorder->invoice(
            EventType::InvoiceCreated,
            Documents::ukCardInvoice(),
            Documents::ukCardOrder(),
            1
        ));
        $case('uk-card', $recorder->invoice(
            EventType::InvoicePaid,
            Documents::ukCardInvoice(),
            Documents::ukCardOrder(),
            1
        ));
        $case('eur-guest-checkmo', $recorder->invoice(
            EventType::InvoiceCreated,
            Documents::euroGuestInvoice(),
            Documents::euroGuestOrder(),
            2
        ));
        $case('eur-guest-checkmo-paid-at-creation', $recorder->invoice(
            EventType::InvoicePaid,
            Documents::euroGuestInvoice(),
            Documents::euroGuestOrder(),
            2
        ));
        $case('bundle-partial', $recorder->invoice(
            EventType::InvoiceCreated,
            Documents::bundleInvoice(),
            Documents::bundleOrder(),
            1
        ));
        $case('in-flight-open', $recorder->invoice(
            EventType::InvoiceCreated,
            Documents::inFlightInvoice(),
            Documents::ukCardOrder(),
            1
        ));
        $deleted = Documents::ukCardOrder();
        $deleted['customer_id'] = null;
        $deletedInvoice = Documents::ukCardInvoice();
        $deletedInvoice['entity_id'] = '3302';
        $case('deleted-customer', $recorder->invoice(EventType::InvoiceCreated, $deletedInvoice, $deleted, 1));
        $case('refund-adjustments', $recorder->creditmemo(Documents::ukCreditmemo(), Documents::ukCardOrder(), 1));
        $case('offline-no-invoice', $recorder->creditmemo(
            Documents::offlineCreditmemo(),
            Documents::bundleOrder(),
            1
        ));
        // Cancel and void: the card invoice voided after capture, an open invoice canceled, and
        // a pending credit memo refunded, another canceled.
        $voided = Documents::ukCardInvoice();
        $voided['state'] = '3';
        $case('void-after-capture', $recorder->invoice(
            EventType::InvoiceCanceled,
            $voided,
            Documents::ukCardOrder(),
            1,
            null,
            2
        ));
        $canceled = Documents::inFlightInvoice();
        $canceled['state'] = '3';
        $case('cancel-before-capture', $recorder->invoice(
            EventType::InvoiceCanceled,
            $canceled,
            Documents::ukCardOrder(),
            1,
            null,
            1
        ));
        $refunded = Documents::ukCreditmemo();
        $case('pending-refund-completed', $recorder->creditmemo(
            $refunded,
            Documents::ukCardOrder(),
            1,
            null,
            EventType::CreditmemoRefunded
        ));
        $declined = Documents::ukCreditmemo();
        $declined['state'] = '3';
        $case('pending-refund-canceled', $recorder->creditmemo(
            $declined,
            Documents::ukCardOrder(),
            1,
            null,
            EventType::CreditmemoCanceled
        ));
        $case('b2b', $recorder->customer(Documents::b2bCustomer(), 1, 4));
        foreach (Documents::products() as $name => $product) {
            $case($name, $recorder->product($product, 0, (int) $product['store_id']));
        }

        $envelopes = new EnvelopeFactory();
        $written = 0;
        $ids = [];
        foreach ($store->all() as $i => $record) {
            $message = $envelopes->message($record, 'hartley-goods');
            $event = json_decode($message->body, true, 512, JSON_THROW_ON_ERROR);
            self::assertSame(
                ['event_id', 'schema_version', 'event_type', 'merchant_id', 'website_id', 'store_id', 'occurred_at',
                    'source', 'payload'],
                array_keys($event)
            );
            self::assertTrue(Uuid::isV4($event['event_id']));
            self::assertSame('2025-04-02T10:14:12Z', $event['occurred_at']);
            self::assertSame($event['event_id'], $message->headers['Nats-Msg-Id']);
            $ids[$event['event_id']] = true;
            self::assertNoFloats($event['payload'], $record->eventType->value);
            $type = str_replace('.', '-', $record->eventType->value);
            $name = sprintf('%02d-%s-%s.json', $i + 1, $type, $record->entityId);
            file_put_contents($dir . '/' . $name, $message->body);
            $written++;
        }
        self::assertCount($written, $ids, 'one event id per event');
        self::assertSame(20, $written);

        // A backfill's event: the same envelope with the run's backfill_id, on the history subject.
        $history = new EventRecorder(new InMemoryOutboxStore(), new SnapshotSerializer(), $clock, new FixedSource());
        $record = $history->invoice(
            EventType::InvoiceCreated,
            Documents::ukCardInvoice(),
            Documents::ukCardOrder(),
            1,
            null,
            null,
            'bf-0123456789abcdef'
        );
        $message = $envelopes->message($record, 'hartley-goods');
        self::assertSame('magento.hartley-goods.history.invoice.created', $message->subject);
        $event = json_decode($message->body, true, 512, JSON_THROW_ON_ERROR);
        self::assertSame('bf-0123456789abcdef', $event['backfill_id']);
        file_put_contents($dir . '/21-history-invoice-created-' . $record->entityId . '.json', $message->body);

        // The tax facts reach the contract check: tax classes, applied taxes and tax settings on
        // the UK order, empty applied taxes on the zero-rated EUR order, none from the older bundle order.
        $orders = [];
        foreach ($store->all() as $record) {
            if (isset($record->payload['order'])) {
                $orders[$record->payload['order']['increment_id']] = $record->payload['order'];
            }
        }
        self::assertSame('Taxable Goods', $orders['000004410']['items'][0]['tax_class']);
        self::assertCount(3, $orders['000004410']['extension_attributes']['item_applied_taxes']);
        self::assertSame('shipping', $orders['000004410']['tax_config']['based_on']);
        self::assertSame([], $orders['200000087']['extension_attributes']['applied_taxes']);
        self::assertArrayNotHasKey('tax_config', $orders['000004600']);

        // The serializer reports Magento's data as it is; a positive header discount (a broken
        // third-party total collector) must be refused by the contract, naming the field.
        $broken = Documents::ukCardInvoice();
        $broken['entity_id'] = '3999';
        $broken['discount_amount'] = '5.0000';
        $record = $recorder->invoice(EventType::InvoiceCreated, $broken, Documents::ukCardOrder(), 1);
        file_put_contents(
            $dir . '/negative/invoice-created-discount_amount-positive.json',
            $envelopes->message($record, 'hartley-goods')->body
        );
    }

    /** Money and quantities are decimal strings; JSON floats would be read through binary floats. */
    private static function assertNoFloats(mixed $value, string $path): void
    {
        if (is_array($value)) {
            foreach ($value as $key => $child) {
                self::assertNoFloats($child, $path . '/' . $key);
            }
            return;
        }
        self::assertIsNotFloat($value, $path);
    }
}
