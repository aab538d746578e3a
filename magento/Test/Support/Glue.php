<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use DateTimeImmutable;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\OutboxStore;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\Status\DocumentStatus;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Core\Status\StatusUpdate;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\NewEntityRegistry;
use Ledger\SageSync\Model\Recorder;
use Magento\Framework\Event\Event;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;

/** The glue wired as Magento's DI would, over an in-memory outbox and a recording status sink. */
final class Glue implements StatusSink
{
    public InMemoryOutboxStore $outbox;
    public ArrayConfig $settings;
    public Config $config;
    public FixedClock $clock;
    public ArrayLogger $logger;
    public NewEntityRegistry $registry;
    public Recorder $recorder;

    /** @var list<array{string, int, string, ?string}> */
    public array $statuses = [];

    /** @var list<array{?string, ?string}> Sage reference and time of each status, as in $statuses */
    public array $details = [];

    /** @var array<string, DocumentStatus> feed state per "type:id", as DbStatusSink keeps it */
    public array $feedStates = [];

    public function __construct(?OutboxStore $store = null)
    {
        $this->outbox = new InMemoryOutboxStore();
        $this->settings = new ArrayConfig();
        $this->config = new Config($this->settings, $this->settings);
        $this->clock = new FixedClock();
        $this->logger = new ArrayLogger();
        $this->registry = new NewEntityRegistry();
        $this->recorder = new Recorder(
            new EventRecorder($store ?? $this->outbox, new SnapshotSerializer(), $this->clock, new FixedSource()),
            TaxData::forFixtures()->extractor(),
            new StubStores(),
            $this,
            $this->config,
            $this->logger
        );
    }

    public function update(
        string $entityType,
        int $entityId,
        SageStatus $status,
        ?string $message,
        ?string $sageReference = null,
        ?DateTimeImmutable $at = null
    ): void {
        $this->statuses[] = [$entityType, $entityId, $status->value, $message];
        $this->details[] = [$sageReference, $at?->format(DATE_ATOM)];
    }

    public function apply(string $entityType, int $entityId, StatusUpdate $update, bool $payment): void
    {
        $key = $entityType . ':' . $entityId;
        $merged = ($this->feedStates[$key] ?? new DocumentStatus())->with($update, $payment);
        if ($merged === null) {
            return;
        }
        $this->feedStates[$key] = $merged;
        [$status, $message, $number] = $merged->chip();
        $this->update($entityType, $entityId, $status, $message, $number, $merged->at());
    }

    /** Dispatches like Magento's event manager: data on the event and on the observer. */
    public static function fire(ObserverInterface $observer, array $data): void
    {
        $observer->execute(new Observer(['event' => new Event($data)] + $data));
    }

    /** @return list<string> dedupe keys in the outbox */
    public function keys(): array
    {
        return array_map(static fn ($r): string => $r->dedupeKey, $this->outbox->all());
    }
}
