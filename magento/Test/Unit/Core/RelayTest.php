<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use DateTimeImmutable;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Outbox\PayloadRebuilder;
use Ledger\SageSync\Core\Outbox\Relay;
use Ledger\SageSync\Core\Outbox\RetryPolicy;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Publish\PublishException;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Core\Status\StatusUpdate;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\FixedSource;
use Ledger\SageSync\Test\Support\ScriptedPublisher;
use PHPUnit\Framework\TestCase;

final class RelayTest extends TestCase
{
    private InMemoryOutboxStore $store;
    private FixedClock $clock;
    private EventRecorder $recorder;
    private ScriptedPublisher $publisher;

    /** @var list<array{string, int, string, ?string}> */
    private array $statuses = [];

    protected function setUp(): void
    {
        $this->store = new InMemoryOutboxStore();
        $this->clock = new FixedClock();
        $this->recorder = new EventRecorder($this->store, new SnapshotSerializer(), $this->clock, new FixedSource());
        $this->publisher = new ScriptedPublisher();
    }

    private function relay(int $maxAttempts = 3, ?PayloadRebuilder $rebuilder = null): Relay
    {
        $sink = new class ($this->statuses) implements StatusSink {
            public function __construct(private array &$log)
            {
            }

            public function update(
                string $type,
                int $id,
                SageStatus $status,
                ?string $message,
                ?string $ref = null,
                ?DateTimeImmutable $at = null
            ): void {
                $this->log[] = [$type, $id, $status->value, $message];
            }

            public function apply(string $type, int $id, StatusUpdate $update, bool $payment): void
            {
                throw new \LogicException('the relay only sets statuses of its own');
            }
        };
        return new Relay(
            $this->store,
            $this->publisher,
            new EnvelopeFactory(),
            new RetryPolicy($maxAttempts, 60, 3600),
            $this->clock,
            $sink,
            $rebuilder
        );
    }

    private function recordInvoiceCreatedAndPaid(): void
    {
        $this->recorder->invoice(EventType::InvoiceCreated, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1);
        $this->recorder->invoice(EventType::InvoicePaid, Documents::ukCardInvoice(), Documents::ukCardOrder(), 1);
    }

    public function testPublishesInOrderWithEventIdAsMsgIdAndRecordsTheAck(): void
    {
        $this->recordInvoiceCreatedAndPaid();
        $result = $this->relay()->run('hartley-goods', 100);
        self::assertSame(2, $result->published);
        self::assertSame(['invoice.created', 'invoice.paid'], $this->publisher->sentTypes());
        $first = $this->publisher->sent[0];
        self::assertSame('magento.hartley-goods.invoice.created', $first->subject);
        self::assertSame($first->eventId, $first->headers['Nats-Msg-Id']);
        self::assertSame('1', $first->headers['Ledger-Schema-Version']);
        $rows = $this->store->all();
        self::assertSame(OutboxStatus::Published, $rows[0]->status);
        self::assertSame('MAGENTO_EVENTS', $rows[0]->stream);
        self::assertSame(1, $rows[0]->sequence);
        self::assertSame(2, $rows[1]->sequence);
        self::assertSame('pending', $this->statuses[0][2], 'sent, waiting for Sage');
        self::assertStringContainsString('stream sequence 1', (string) $this->statuses[0][3]);
        self::assertSame(0, $this->relay()->run('hartley-goods', 100)->published, 'nothing left');
    }

    public function testPaidNeverOvertakesCreatedWhileCreatedRetries(): void
    {
        $this->recordInvoiceCreatedAndPaid();
        $this->recorder->customer(Documents::b2bCustomer(), 1, 4);
        $this->publisher->then(new PublishException('JetStream error 10077: message size exceeds'));

        $result = $this->relay()->run('hartley-goods', 100);
        self::assertSame(['invoice.created', 'customer.saved'], $this->publisher->sentTypes(), 'paid held back');
        self::assertSame(1, $result->blocked);
        self::assertSame(1, $result->retried);
        [$created, $paid, $customer] = $this->store->all();
        self::assertSame(OutboxStatus::Retry, $created->status);
        self::assertSame(OutboxStatus::Pending, $paid->status);
        self::assertSame(OutboxStatus::Published, $customer->status, 'other documents are not held up');

        // Before the backoff: paid is due but must still wait for created.
        $this->clock->advance(30);
        $this->publisher->sent = [];
        $this->relay()->run('hartley-goods', 100);
        self::assertSame([], $this->publisher->sentTypes());

        $this->clock->advance(31);
        $this->relay()->run('hartley-goods', 100);
        self::assertSame(['invoice.created', 'invoice.paid'], $this->publisher->sentTypes());
    }

    public function testTransportFailureStopsTheBatchAndCountsOneAttempt(): void
    {
        $this->recordInvoiceCreatedAndPaid();
        $this->recorder->creditmemo(Documents::ukCreditmemo(), Documents::ukCardOrder(), 1);
        $this->publisher->then(new TransportException('cannot connect to NATS at nats.ledger.example:4222'));
        $result = $this->relay()->run('hartley-goods', 100);
        self::assertSame('cannot connect to NATS at nats.ledger.example:4222', $result->stoppedBy);
        self::assertCount(1, $this->publisher->sent);
        $attempts = array_map(static fn (OutboxRecord $r): int => $r->attempts, $this->store->all());
        self::assertSame([1, 0, 0], $attempts);
    }

    public function testDeadAfterMaxAttemptsThenRequeuedByTheOperator(): void
    {
        $this->recordInvoiceCreatedAndPaid();
        for ($i = 0; $i < 3; $i++) {
            $this->publisher->then(new PublishException('JetStream error 10060: expected stream does not match'));
            $this->relay()->run('hartley-goods', 100);
            $this->clock->advance(3600);
        }
        [$created] = $this->store->all();
        self::assertSame(OutboxStatus::Dead, $created->status);
        self::assertSame(3, $created->attempts);
        self::assertCount(1, $this->store->deadLetters);
        self::assertSame('failed', end($this->statuses)[2]);

        // A dead created event keeps its paid event back.
        $this->publisher->sent = [];
        $this->relay()->run('hartley-goods', 100);
        self::assertSame([], $this->publisher->sentTypes());
        self::assertSame(OutboxStatus::Pending, $this->store->all()[1]->status);

        self::assertSame(1, $this->store->requeueDead([], $this->clock->now()));
        $this->relay()->run('hartley-goods', 100);
        self::assertSame(['invoice.created', 'invoice.paid'], $this->publisher->sentTypes());
    }

    public function testRejectedMessageIsDeadAtOnce(): void
    {
        $this->recorder->creditmemo(Documents::ukCreditmemo(), Documents::ukCardOrder(), 1);
        $this->publisher->then(new RejectedException('gateway answered HTTP 422 invalid_event'));
        $result = $this->relay(10)->run('hartley-goods', 100);
        self::assertSame(1, $result->dead);
        self::assertSame(OutboxStatus::Dead, $this->store->all()[0]->status);
        self::assertSame(1, $this->store->all()[0]->attempts);
    }

    public function testDuplicateAckIsPublished(): void
    {
        $this->recorder->creditmemo(Documents::ukCreditmemo(), Documents::ukCardOrder(), 1);
        $this->publisher->then(new PublishAck('MAGENTO_EVENTS', 7, true, 'nats'));
        $result = $this->relay()->run('hartley-goods', 100);
        self::assertSame(1, $result->duplicates);
        self::assertTrue($this->store->all()[0]->duplicate);
        self::assertSame(OutboxStatus::Published, $this->store->all()[0]->status);
    }

    public function testRowWithoutPayloadIsRebuiltBeforePublishing(): void
    {
        $order = Documents::ukCardOrder();
        unset($order['billing_address']);
        $this->recorder->creditmemo(Documents::ukCreditmemo(), $order, 1);
        $rebuilder = new class implements PayloadRebuilder {
            public function rebuild(OutboxRecord $record): array
            {
                return (new SnapshotSerializer())->creditmemoCreated(
                    Documents::ukCreditmemo(),
                    Documents::ukCardOrder(),
                    $record->occurredAt
                );
            }
        };
        $this->relay(3, $rebuilder)->run('hartley-goods', 100);
        $row = $this->store->all()[0];
        self::assertSame(OutboxStatus::Published, $row->status);
        self::assertSame(1207, $row->payload['creditmemo']['entity_id']);
        $body = json_decode($this->publisher->sent[0]->body, true);
        self::assertSame('Exeter', $body['payload']['order']['billing_address']['city']);
    }

    public function testRowWithoutPayloadAndNoRebuilderIsDead(): void
    {
        $order = Documents::ukCardOrder();
        unset($order['billing_address']);
        $this->recorder->creditmemo(Documents::ukCreditmemo(), $order, 1);
        $this->relay()->run('hartley-goods', 100);
        self::assertSame(OutboxStatus::Dead, $this->store->all()[0]->status);
        self::assertSame([], $this->publisher->sent);
    }

    public function testCoalescingKeyIsReleasedOnPublish(): void
    {
        $this->recorder->customer(Documents::b2bCustomer(), 1, 4);
        $this->relay()->run('hartley-goods', 100);
        $this->recorder->customer(Documents::b2bCustomer(), 1, 4);
        $rows = $this->store->all();
        self::assertCount(2, $rows, 'a save after publishing is a new event');
        self::assertNotSame($rows[0]->eventId, $rows[1]->eventId);
    }

    public function testCustomerSavedAgainWhileBeingPublishedIsSentAgain(): void
    {
        $customer = Documents::b2bCustomer();
        $this->recorder->customer($customer, 1, 4);
        $this->publisher->during = function () use ($customer): void {
            $customer['taxvat'] = 'FR99999999999';
            $this->recorder->customer($customer, 1, 4);
        };
        $this->relay()->run('hartley-goods', 100);
        [$row] = $this->store->all();
        self::assertSame(OutboxStatus::Pending, $row->status, 'the newer state was not sent yet');
        self::assertSame('FR99999999999', $row->payload['customer']['taxvat']);

        $this->relay()->run('hartley-goods', 100);
        self::assertSame(OutboxStatus::Published, $this->store->all()[0]->status);
        self::assertCount(2, $this->publisher->sent);
        self::assertNotSame($this->publisher->sent[0]->eventId, $this->publisher->sent[1]->eventId);
        self::assertStringContainsString('FR99999999999', $this->publisher->sent[1]->body);
    }

    public function testInvalidMerchantIdPublishesNothing(): void
    {
        $this->recordInvoiceCreatedAndPaid();
        $this->expectException(\InvalidArgumentException::class);
        try {
            $this->relay()->run('Hartley.Goods', 100);
        } finally {
            self::assertSame([], $this->publisher->sent);
        }
    }

    public function testDeadlineStopsBeforeTheNextRow(): void
    {
        $this->recordInvoiceCreatedAndPaid();
        $result = $this->relay()->run('hartley-goods', 100, microtime(true) - 1);
        self::assertSame('time limit', $result->stoppedBy);
        self::assertSame([], $this->publisher->sent);
    }
}
