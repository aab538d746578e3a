<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use DateTimeImmutable;
use Ledger\SageSync\Core\Outbox\CreditmemoEventPolicy;
use Ledger\SageSync\Core\Outbox\InvoiceEventPolicy;
use Ledger\SageSync\Model\Recorder;
use Magento\Catalog\Model\ResourceModel\Product\CollectionFactory as ProductCollectionFactory;
use Magento\Customer\Model\ResourceModel\Customer\CollectionFactory as CustomerCollectionFactory;
use Magento\Framework\Console\Cli;
use Magento\Sales\Model\ResourceModel\Order\Creditmemo\CollectionFactory as CreditmemoCollectionFactory;
use Magento\Sales\Model\ResourceModel\Order\Invoice\CollectionFactory as InvoiceCollectionFactory;
use Symfony\Component\Console\Command\Command;
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
 * Progress is printed as it goes, one line per page of 200 documents: done of total, the rate and
 * the time left at that rate (a long backfill can be watched, and stopped and run again safely).
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
        $failed = 0;
        foreach ($types as $type) {
            [$seen, $errors, $canceled] = $this->each($type, $range, $output);
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

    /** @return array{int, int, int} [documents seen, failures, canceled documents left out] */
    private function each(string $type, array $range, OutputInterface $output): array
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
        $collection->setPageSize(self::PAGE);
        $pages = (int) $collection->getLastPageNumber();
        $total = (int) $collection->getSize();
        $started = microtime(true);
        $seen = 0;
        $errors = 0;
        $canceled = 0;
        for ($page = 1; $page <= $pages; $page++) {
            $collection->setCurPage($page);
            foreach ($collection as $entity) {
                $seen++;
                try {
                    if (!$this->record($type, $entity)) {
                        $canceled++;
                    }
                } catch (Throwable $e) {
                    $errors++;
                    $output->writeln(
                        '<error>' . $type . ' #' . $entity->getId() . ': ' . $e->getMessage() . '</error>'
                    );
                }
            }
            $collection->clear();
            $output->writeln($this->progress($type, $seen, $total, microtime(true) - $started));
        }
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
    private function record(string $type, object $entity): bool
    {
        switch ($type) {
            case 'invoice':
                // As at creation: created, and paid when Magento holds it paid (offline methods
                // too); a canceled invoice not at all.
                $events = InvoiceEventPolicy::backfill((int) $entity->getState());
                foreach ($events as $event) {
                    $this->recorder->invoice($entity, $event, true);
                }
                return $events !== [];
            case 'creditmemo':
                $events = CreditmemoEventPolicy::backfill((int) $entity->getState());
                foreach ($events as $event) {
                    $this->recorder->creditmemo($entity, true, $event);
                }
                return $events !== [];
            case 'customer':
                $this->recorder->customer($entity);
                return true;
            default:
                $this->recorder->product($entity);
                return true;
        }
    }

    private function day(string $value): ?string
    {
        $date = DateTimeImmutable::createFromFormat('!Y-m-d', $value);
        return $date !== false && $date->format('Y-m-d') === $value ? $value : null;
    }
}
