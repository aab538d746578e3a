<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use DateTimeImmutable;
use DateTimeZone;
use Ledger\SageSync\Core\Outbox\BackfillHeader;
use Ledger\SageSync\Core\Outbox\CreditmemoEventPolicy;
use Ledger\SageSync\Core\Outbox\InvoiceEventPolicy;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Outbox\PublisherFactory;
use Ledger\SageSync\Model\Recorder;
use Magento\Catalog\Model\ResourceModel\Product\CollectionFactory as ProductCollectionFactory;
use Magento\Customer\Model\ResourceModel\Customer\CollectionFactory as CustomerCollectionFactory;
use Magento\Framework\Console\Cli;
use Magento\Sales\Model\ResourceModel\Order\Creditmemo\CollectionFactory as CreditmemoCollectionFactory;
use Magento\Sales\Model\ResourceModel\Order\Invoice\CollectionFactory as InvoiceCollectionFactory;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Helper\ProgressBar;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;
use Throwable;

/**
 * bin/magento ledger:backfill --from=2025-01-01 --to=2025-03-31 [--type=invoice,creditmemo]
 *
 * Records documents created (customers/products: updated) in the date range as if they had just
 * been saved: invoice.created (+ invoice.paid for paid invoices), creditmemo.created,
 * customer.saved, product.saved, each dated when it happened: a document at its creation, an
 * invoice's payment at its capture transaction (Recorder, CaptureTime). Canceled invoices and
 * credit memos are left out: they are not live documents, and Ledger must not post them. The
 * outbox dedupe keys make it safe to run twice: a document already recorded is skipped.
 *
 * The events are history: each carries the run's backfill id and is published on the history
 * subjects, which Ledger handles after the merchant's live events (decision record 0038). Before
 * recording, the run announces itself to Ledger (BackfillHeader: range, types, documents per
 * type), so the merchant portal and `ledgerctl backfill status` show its progress there, and the
 * operator can pause, resume or cancel it (decision record 0039). The id depends only on the
 * merchant, range and types, so a stopped run started again continues the same run.
 *
 * Progress is shown as it goes, with a progress bar per type: done of total, the rate and the
 * time left at that rate (a long backfill can be watched, and stopped and run again safely).
 */
class Backfill extends Command
{
    private const TYPES = ['invoice', 'creditmemo', 'customer', 'product'];
    private const PAGE = 200;

    public function __construct(
        private Recorder $recorder,
        private InvoiceCollectionFactory $invoices,
        private CreditmemoCollectionFactory $creditmemos,
        private CustomerCollectionFactory $customers,
        private ProductCollectionFactory $products,
        private ?PublisherFactory $publishers = null,
        private ?Config $config = null,
    ) {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:backfill')
            ->setDescription('Records existing documents in the Ledger outbox (idempotent)')
            ->addOption('from', null, InputOption::VALUE_REQUIRED, 'First day, YYYY-MM-DD (UTC)')
            ->addOption('to', null, InputOption::VALUE_REQUIRED, 'Last day, YYYY-MM-DD (UTC)')
            ->addOption(
                'type',
                null,
                InputOption::VALUE_REQUIRED,
                'Comma-separated: ' . implode(',', self::TYPES),
                'invoice,creditmemo'
            );
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $from = $this->day((string) $input->getOption('from'));
        $to = $this->day((string) $input->getOption('to'));
        $types = array_filter(array_map('trim', explode(',', (string) $input->getOption('type'))));
        if ($from === null || $to === null || $from > $to || array_diff($types, self::TYPES) !== []) {
            $output->writeln('<error>Use --from=YYYY-MM-DD --to=YYYY-MM-DD (from <= to) and --type from '
                . implode(',', self::TYPES) . '</error>');
            return Cli::RETURN_FAILURE;
        }
        $range = ['from' => $from . ' 00:00:00', 'to' => $to . ' 23:59:59'];
        $types = array_values(array_unique($types));
        $merchant = $this->config?->merchantId() ?? '';
        $backfillId = null;
        if ($merchant !== '') {
            $backfillId = BackfillHeader::id($merchant, $from, $to, $types);
            $totals = [];
            foreach ($types as $type) {
                $totals[$type] = $this->countable($type, $range);
            }
            $this->announce($merchant, $backfillId, $from, $to, $types, $totals, $output);
        }
        $failed = 0;
        foreach ($types as $type) {
            [$seen, $errors, $canceled] = $this->each($type, $range, $output, $backfillId);
            $failed += $errors;
            $output->writeln(sprintf(
                '%s: %d recorded or already there, %d canceled left out, %d failed',
                $type,
                $seen - $errors - $canceled,
                $canceled,
                $errors
            ));
        }
        return $failed === 0 ? Cli::RETURN_SUCCESS : Cli::RETURN_FAILURE;
    }

    /** The documents of `$type` in the range, as a fresh collection ordered by id. */
    private function collection(string $type, array $range): object
    {
        $collection = match ($type) {
            'invoice' => $this->invoices->create(),
            'creditmemo' => $this->creditmemos->create(),
            'customer' => $this->customers->create(),
            'product' => $this->products->create()->addAttributeToSelect('*'),
        };
        $field = in_array($type, ['invoice', 'creditmemo'], true) ? 'created_at' : 'updated_at';
        $collection->addFieldToFilter($field, $range);
        $collection->setOrder('entity_id', 'ASC');
        return $collection;
    }

    /** Documents the run records: canceled invoices and credit memos are left out. */
    private function countable(string $type, array $range): int
    {
        $collection = $this->collection($type, $range);
        if ($type === 'invoice') {
            $collection->addFieldToFilter('state', ['neq' => InvoiceEventPolicy::STATE_CANCELED]);
        } elseif ($type === 'creditmemo') {
            $collection->addFieldToFilter('state', ['neq' => CreditmemoEventPolicy::STATE_CANCELED]);
        }
        return (int) $collection->getSize();
    }

    /**
     * Tells Ledger the run started. Without it the backfill still works; only its progress is not
     * shown in Ledger (e.g. a store that can publish over HTTPS only).
     *
     * @param list<string> $types
     * @param array<string, int> $totals
     */
    private function announce(
        string $merchant,
        string $backfillId,
        string $from,
        string $to,
        array $types,
        array $totals,
        OutputInterface $output
    ): void {
        $output->writeln(sprintf('Backfill %s: %d document(s) to record', $backfillId, array_sum($totals)));
        if ($this->publishers === null) {
            return;
        }
        $message = BackfillHeader::message(
            $merchant,
            $backfillId,
            $from,
            $to,
            $types,
            $totals,
            new DateTimeImmutable('now', new DateTimeZone('UTC'))
        );
        try {
            $publisher = $this->publishers->create();
            $publisher->publish($message);
            $publisher->close();
        } catch (Throwable $e) {
            $output->writeln('<comment>Ledger was not told about this backfill (' . $e->getMessage()
                . '); its documents are recorded all the same, its progress is not shown in Ledger</comment>');
        }
    }

    /** @return array{int, int, int} [documents seen, failures, canceled documents left out] */
    private function each(string $type, array $range, OutputInterface $output, ?string $backfillId): array
    {
        $collection = $this->collection($type, $range);
        $collection->setPageSize(self::PAGE);
        $pages = (int) $collection->getLastPageNumber();
        $total = (int) $collection->getSize();
        $bar = new ProgressBar($output, $total);
        $bar->setFormat(' %message% %current%/%max% [%bar%] %percent:3s%% %elapsed:6s%/%estimated:-6s%');
        $bar->setMessage($type);
        $bar->start();
        $started = microtime(true);
        $seen = 0;
        $errors = 0;
        $canceled = 0;
        for ($page = 1; $page <= $pages; $page++) {
            $collection->setCurPage($page);
            foreach ($collection as $entity) {
                $seen++;
                try {
                    if (!$this->record($type, $entity, $backfillId)) {
                        $canceled++;
                    }
                } catch (Throwable $e) {
                    $errors++;
                    $output->writeln(
                        '<error>' . $type . ' #' . $entity->getId() . ': ' . $e->getMessage() . '</error>'
                    );
                }
                $bar->advance();
            }
            $collection->clear();
            $bar->setMessage($this->progress($type, $seen, $total, microtime(true) - $started));
        }
        $bar->finish();
        $output->writeln('');
        return [$seen, $errors, $canceled];
    }

    /** One progress line: "invoice: 400/1250 (32%), 85.1/s, about 10 s left". */
    public static function progress(string $type, int $done, int $total, float $elapsed): string
    {
        $percent = $total > 0 ? intdiv(100 * min($done, $total), $total) : 100;
        $rate = $elapsed > 0 ? $done / $elapsed : 0.0;
        $left = $rate > 0 ? (int) ceil(max(0, $total - $done) / $rate) : 0;
        return sprintf('%s: %d/%d (%d%%), %.1f/s, about %d s left', $type, $done, $total, $percent, $rate, $left);
    }

    /** Records one entity; false for a canceled document, which is left out. */
    private function record(string $type, object $entity, ?string $backfillId): bool
    {
        switch ($type) {
            case 'invoice':
                // As at creation: created, and paid when Magento holds it paid (offline methods
                // too); a canceled invoice not at all.
                $events = InvoiceEventPolicy::backfill((int) $entity->getState());
                foreach ($events as $event) {
                    $this->recorder->invoice($entity, $event, true, null, $backfillId);
                }
                return $events !== [];
            case 'creditmemo':
                $events = CreditmemoEventPolicy::backfill((int) $entity->getState());
                foreach ($events as $event) {
                    $this->recorder->creditmemo($entity, true, $event, $backfillId);
                }
                return $events !== [];
            case 'customer':
                $this->recorder->customer($entity, null, $backfillId);
                return true;
            default:
                $this->recorder->product($entity, $backfillId);
                return true;
        }
    }

    private function day(string $value): ?string
    {
        $date = DateTimeImmutable::createFromFormat('!Y-m-d', $value);
        return $date !== false && $date->format('Y-m-d') === $value ? $value : null;
    }
}
