<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\RelayResult;
use Ledger\SageSync\Model\Outbox\RelayRunner;
use Ledger\SageSync\Observer\CreditmemoSaveAfter;
use Ledger\SageSync\Observer\CustomerAddressSaveAfter;
use Ledger\SageSync\Observer\CustomerSaveAfter;
use Ledger\SageSync\Observer\FlushAfterCommit;
use Ledger\SageSync\Observer\InvoiceSaveAfter;
use Ledger\SageSync\Observer\MarkNewDocument;
use Ledger\SageSync\Observer\ProductSaveAfter;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\Glue;
use Ledger\SageSync\Test\Support\Models;
use Ledger\SageSync\Test\Support\NullStore;
use Magento\Framework\App\State;
use Magento\Framework\FlagManager;
use Magento\Sales\Model\Order\Invoice;
use PHPUnit\Framework\TestCase;
use RuntimeException;

/**
 * The observers as Magento calls them during a save: *_save_before, then *_save_after inside
 * the transaction (what ends up in the outbox), then *_save_commit_after.
 */
final class ObserverTest extends TestCase
{
    private Glue $glue;

    protected function setUp(): void
    {
        $this->glue = new Glue();
    }

    /** Simulates the resource model: before (no id yet), INSERT assigns the id, after. */
    private function saveNewInvoice(array $data, bool $payCalled): Invoice
    {
        $id = $data['entity_id'];
        unset($data['entity_id']);
        $invoice = Models::invoice($data, Models::order(Documents::ukCardOrder()));
        $invoice->isObjectNew(true);
        $invoice->payCalled = $payCalled;
        Glue::fire(new MarkNewDocument($this->glue->registry), ['data_object' => $invoice, 'invoice' => $invoice]);
        $invoice->setId($id);
        $invoice->isObjectNew(false);
        $this->invoiceSaveAfter($invoice);
        return $invoice;
    }

    private function invoiceSaveAfter(Invoice $invoice): void
    {
        Glue::fire(
            new InvoiceSaveAfter($this->glue->recorder, $this->glue->registry),
            ['data_object' => $invoice, 'invoice' => $invoice]
        );
    }

    public function testCardInvoiceCapturedAtCreationIsCreatedThenPaid(): void
    {
        $this->saveNewInvoice(Documents::ukCardInvoice(), true);
        self::assertSame(['invoice.created:3301', 'invoice.paid:3301'], $this->glue->keys());
        [$created, $paid] = $this->glue->outbox->all();
        self::assertSame(1, $created->websiteId);
        self::assertSame(1, $created->storeId);
        self::assertSame('71.40', $created->payload['invoice']['grand_total']);
        self::assertSame('braintree', $paid->payload['payment']['method']);
        self::assertSame(['invoice', 3301, 'pending', 'Queued for Ledger (invoice.paid).'], end($this->glue->statuses));
    }

    public function testOfflineMethodIsReportedPaidAtCreation(): void
    {
        $this->saveNewInvoice(Documents::ukCardInvoice(), false);
        self::assertSame(['invoice.created:3301', 'invoice.paid:3301'], $this->glue->keys());
    }

    public function testAuthorizeOnlyThenCaptureLater(): void
    {
        $data = Documents::ukCardInvoice();
        $data['state'] = '1';
        $invoice = $this->saveNewInvoice($data, false);
        self::assertSame(['invoice.created:3301'], $this->glue->keys());

        // Loaded again later; the admin clicks "Capture": pay() runs, state 1 → 2.
        $invoice->setOrigData();
        $invoice->setData('state', '2');
        $invoice->payCalled = true;
        $this->invoiceSaveAfter($invoice);
        self::assertSame(['invoice.created:3301', 'invoice.paid:3301'], $this->glue->keys());
    }

    public function testDoubleFiringAndResavesWriteNothingMore(): void
    {
        $invoice = $this->saveNewInvoice(Documents::ukCardInvoice(), true);
        $statuses = count($this->glue->statuses);
        // The same event fired a second time (a third-party module re-saving in the same request).
        $this->invoiceSaveAfter($invoice);
        // A later save of the paid invoice (refund sets is_used_for_refund, comments, emails).
        $invoice->setOrigData();
        $invoice->payCalled = false;
        $invoice->setData('is_used_for_refund', 1);
        $this->invoiceSaveAfter($invoice);
        self::assertSame(['invoice.created:3301', 'invoice.paid:3301'], $this->glue->keys());
        self::assertCount($statuses, $this->glue->statuses, 'no status regression on duplicates');
    }

    public function testDuplicateInsideOneSaveIsIgnoredByTheStore(): void
    {
        $invoice = Models::invoice(Documents::ukCardInvoice(), Models::order(Documents::ukCardOrder()));
        $this->glue->recorder->invoice($invoice, EventType::InvoiceCreated);
        $this->glue->recorder->invoice($invoice, EventType::InvoiceCreated);
        self::assertSame(['invoice.created:3301'], $this->glue->keys());
    }

    public function testOutboxWriteFailureFailsTheSaveLoudly(): void
    {
        $store = new class extends NullStore {
            public function append(OutboxRecord $record): bool
            {
                throw new RuntimeException("SQLSTATE[42S02]: Table 'ledger_sage_outbox' doesn't exist");
            }
        };
        $this->glue = new Glue($store);
        $this->expectException(RuntimeException::class);
        $this->expectExceptionMessage('ledger_sage_outbox');
        $this->saveNewInvoice(Documents::ukCardInvoice(), true);
    }

    public function testUnreadableOrderStillRecordsARowWithIds(): void
    {
        $invoice = Models::invoice(Documents::ukCardInvoice(), null);
        $this->glue->recorder->invoice($invoice, EventType::InvoiceCreated);
        $row = $this->glue->outbox->all()[0];
        self::assertNull($row->payload);
        self::assertSame(3301, $row->entityId);
        self::assertStringContainsString('order not loaded', (string) $row->lastError);
        self::assertSame('warning', $this->glue->logger->lines[0][0]);
        $queued = ['invoice', 3301, 'pending', 'Queued for Ledger (invoice.created).'];
        self::assertSame($queued, $this->glue->statuses[0]);
    }

    public function testDisabledRecordsNothing(): void
    {
        $this->glue->settings->values['ledger_sage_sync/general/enabled'] = '0';
        $this->saveNewInvoice(Documents::ukCardInvoice(), true);
        self::assertSame([], $this->glue->keys());
    }

    public function testVoidAfterCaptureIsCanceledFromPaid(): void
    {
        $invoice = $this->saveNewInvoice(Documents::ukCardInvoice(), true);
        // Loaded again; the admin clicks "Void": Invoice::void() cancels it, state 2 -> 3.
        $invoice->setOrigData();
        $invoice->payCalled = false;
        $invoice->setData('state', '3');
        $this->invoiceSaveAfter($invoice);
        // A later re-save of the canceled invoice adds nothing.
        $invoice->setOrigData();
        $this->invoiceSaveAfter($invoice);
        self::assertSame(
            ['invoice.created:3301', 'invoice.paid:3301', 'invoice.canceled:3301'],
            $this->glue->keys()
        );
        $canceled = $this->glue->outbox->all()[2]->payload;
        self::assertSame(3, $canceled['invoice']['state']);
        self::assertSame(2, $canceled['previous_state']);
        self::assertArrayHasKey('canceled_at', $canceled);
        $queued = ['invoice', 3301, 'pending', 'Queued for Ledger (invoice.canceled).'];
        self::assertSame($queued, end($this->glue->statuses));
    }

    public function testCancelBeforeCaptureIsCanceledFromOpen(): void
    {
        $data = Documents::ukCardInvoice();
        $data['state'] = '1';
        $invoice = $this->saveNewInvoice($data, false);
        $invoice->setOrigData();
        $invoice->setData('state', '3');
        $this->invoiceSaveAfter($invoice);
        self::assertSame(['invoice.created:3301', 'invoice.canceled:3301'], $this->glue->keys());
        self::assertSame(1, $this->glue->outbox->all()[1]->payload['previous_state']);
    }

    public function testPendingCreditMemoRefundedThenAnotherCanceled(): void
    {
        $data = Documents::ukCreditmemo();
        $data['state'] = '1';
        $memo = Models::creditmemo(array_diff_key($data, ['entity_id' => 1]), Models::order(Documents::ukCardOrder()));
        $observer = new CreditmemoSaveAfter($this->glue->recorder, $this->glue->registry);
        Glue::fire(new MarkNewDocument($this->glue->registry), ['data_object' => $memo]);
        $memo->setId($data['entity_id']);
        Glue::fire($observer, ['creditmemo' => $memo]);
        // The gateway confirms the refund: state 1 -> 2.
        $memo->setOrigData();
        $memo->setData('state', '2');
        Glue::fire($observer, ['creditmemo' => $memo]);
        // A re-save of the refunded memo adds nothing.
        $memo->setOrigData();
        Glue::fire($observer, ['creditmemo' => $memo]);
        self::assertSame(['creditmemo.created:1207', 'creditmemo.refunded:1207'], $this->glue->keys());
        $refunded = $this->glue->outbox->all()[1]->payload;
        self::assertSame(2, $refunded['creditmemo']['state']);
        self::assertSame(1, $refunded['previous_state']);

        // Another pending credit memo whose refund the gateway declines: state 1 -> 3.
        $other = Models::creditmemo(
            array_merge($data, ['entity_id' => '1208']),
            Models::order(Documents::ukCardOrder())
        );
        $other->setOrigData();
        $other->setData('state', '3');
        Glue::fire($observer, ['creditmemo' => $other]);
        self::assertSame('creditmemo.canceled:1208', $this->glue->keys()[2]);
        self::assertSame(3, $this->glue->outbox->all()[2]->payload['creditmemo']['state']);
    }

    public function testCreditMemoOnlyWhenNew(): void
    {
        $data = Documents::ukCreditmemo();
        $memo = Models::creditmemo(array_diff_key($data, ['entity_id' => 1]), Models::order(Documents::ukCardOrder()));
        $observer = new CreditmemoSaveAfter($this->glue->recorder, $this->glue->registry);
        Glue::fire(new MarkNewDocument($this->glue->registry), ['data_object' => $memo]);
        $memo->setId($data['entity_id']);
        Glue::fire($observer, ['creditmemo' => $memo]);
        Glue::fire($observer, ['creditmemo' => $memo]);
        self::assertSame(['creditmemo.created:1207'], $this->glue->keys());
        self::assertSame(3301, $this->glue->outbox->all()[0]->payload['creditmemo']['invoice_id']);
        self::assertSame('creditmemo', $this->glue->statuses[0][0]);
    }

    public function testCustomerAndAddressSavesCoalesceIntoOneEvent(): void
    {
        $customer = Models::customer(Documents::b2bCustomer());
        Glue::fire(new CustomerSaveAfter($this->glue->recorder), ['customer' => $customer]);
        // The address book is saved afterwards; the new billing street must win.
        $address = $customer->addresses[0];
        $address->setData('street', "1 place Royale");
        Glue::fire(new CustomerAddressSaveAfter($this->glue->recorder), ['customer_address' => $address]);
        self::assertSame(['customer.saved:5120'], $this->glue->keys());
        $payload = $this->glue->outbox->all()[0]->payload;
        self::assertSame(['1 place Royale'], $payload['customer']['addresses'][0]['street']);
        self::assertSame(1, $this->glue->outbox->all()[0]->websiteId);
        self::assertSame([], $this->glue->statuses, 'customers have no grid status');
    }

    public function testProductIsRecordedPerStoreScope(): void
    {
        $product = Models::product(Documents::products()['virtual']);
        Glue::fire(new ProductSaveAfter($this->glue->recorder), ['product' => $product]);
        $row = $this->glue->outbox->all()[0];
        self::assertSame('product.saved:611:1', $row->dedupeKey);
        self::assertSame(1, $row->websiteId);
        self::assertSame('virtual', $row->payload['product']['type_id']);
    }

    /** @return array<string, array{?string, int}> */
    public static function areas(): array
    {
        return [
            'admin' => ['adminhtml', 1],
            'checkout' => ['frontend', 0],
            'REST API' => ['webapi_rest', 0],
            'GraphQL' => ['graphql', 0],
            'cron' => ['crontab', 0],
            'no area' => [null, 0],
        ];
    }

    /** @dataProvider areas */
    public function testFlushAfterCommitOnlyInTheAdmin(?string $area, int $runs): void
    {
        $runner = $this->createMock(RelayRunner::class);
        $runner->expects(self::exactly($runs))->method('run')->with(20, 3.0, true);
        $flush = new FlushAfterCommit(
            $this->glue->config,
            new State($area),
            $runner,
            $this->glue->logger,
            new FlagManager()
        );
        Glue::fire($flush, []);
        Glue::fire($flush, []);
    }

    public function testFlushErrorsNeverReachTheAdmin(): void
    {
        $runner = $this->createMock(RelayRunner::class);
        $runner->method('run')->willThrowException(new RuntimeException('not publishing: The NATS URL is not set.'));
        $flush = new FlushAfterCommit(
            $this->glue->config,
            new State('adminhtml'),
            $runner,
            $this->glue->logger,
            new FlagManager()
        );
        Glue::fire($flush, []);
        self::assertStringContainsString('deferred to cron', $this->glue->logger->lines[0][1]);
    }

    /**
     * Found in a real Magento 2.4.7-p3 with Ledger unreachable by timeout (a dropped route, not a
     * refused port): every admin invoice save waited for the NATS connect timeout after its commit,
     * a median of 2.1 s per save over six saves. After one failed attempt the after-commit
     * publish now pauses for a minute (cron publishes meanwhile), so at most one save a minute
     * pays for the outage.
     */
    public function testAnUnreachableLedgerPausesTheAfterCommitPublish(): void
    {
        $flags = new FlagManager();
        $down = new RelayResult();
        $down->retried = 1;
        $down->stoppedBy = 'timed out waiting for NATS at 10.255.255.1:4222';
        $runner = $this->createMock(RelayRunner::class);
        $runner->expects(self::once())->method('run')->willReturn($down);
        // Three admin saves, one request each (one observer instance per request).
        foreach ([1, 2, 3] as $request) {
            $flush = new FlushAfterCommit(
                $this->glue->config,
                new State('adminhtml'),
                $runner,
                $this->glue->logger,
                $flags
            );
            Glue::fire($flush, []);
        }
        $until = (int) $flags->getFlagData(FlushAfterCommit::PAUSE_FLAG);
        self::assertGreaterThan(time() + 50, $until);
        self::assertLessThanOrEqual(time() + FlushAfterCommit::PAUSE_SECONDS, $until);
    }

    public function testThePauseEndsAndASuccessfulPublishDoesNotPause(): void
    {
        $flags = new FlagManager();
        $flags->saveFlag(FlushAfterCommit::PAUSE_FLAG, time() - 1);
        $runner = $this->createMock(RelayRunner::class);
        $runner->expects(self::exactly(2))->method('run')->willReturn(new RelayResult());
        foreach ([1, 2] as $request) {
            $flush = new FlushAfterCommit(
                $this->glue->config,
                new State('adminhtml'),
                $runner,
                $this->glue->logger,
                $flags
            );
            Glue::fire($flush, []);
        }
        self::assertLessThan(time(), (int) $flags->getFlagData(FlushAfterCommit::PAUSE_FLAG));
    }

    /**
     * Magento's object manager passes an optional constructor argument's default (null) instead
     * of injecting it: on the real host the pause flag was never written while the parameter was
     * `?FlagManager $flags = null`. Every service the observer needs is a required parameter.
     */
    public function testTheFlushObserverTakesEveryServiceAsARequiredArgument(): void
    {
        $constructor = new \ReflectionMethod(FlushAfterCommit::class, '__construct');
        $optional = [];
        foreach ($constructor->getParameters() as $parameter) {
            if ($parameter->isOptional()) {
                $optional[] = $parameter->getName();
            }
        }
        self::assertSame([], $optional);
        self::assertSame('flags', $constructor->getParameters()[4]->getName());
    }
}
