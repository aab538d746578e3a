<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use DateTimeImmutable;
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
 * invoice's payment at its capture transaction (Recorder, CaptureTime). The outbox dedupe keys make
 * it safe to run twice: a document already recorded is skipped.
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
            [$seen, $errors] = $this->each($type, $range, $output);
            $failed += $errors;
            $output->writeln(sprintf('%s: %d recorded or already there, %d failed', $type, $seen - $errors, $errors));
        }
        return $failed === 0 ? Cli::RETURN_SUCCESS : Cli::RETURN_FAILURE;
    }

    /** @return array{int, int} [documents seen, failures] */
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
        $seen = 0;
        $errors = 0;
        for ($page = 1; $page <= $pages; $page++) {
            $collection->setCurPage($page);
            foreach ($collection as $entity) {
                $seen++;
                try {
                    $this->record($type, $entity);
                } catch (Throwable $e) {
                    $errors++;
                    $output->writeln(
                        '<error>' . $type . ' #' . $entity->getId() . ': ' . $e->getMessage() . '</error>'
                    );
                }
            }
            $collection->clear();
        }
        return [$seen, $errors];
    }

    private function record(string $type, object $entity): void
    {
        switch ($type) {
            case 'invoice':
                // As at creation: created, and paid when Magento holds it paid (offline methods too).
                foreach (InvoiceEventPolicy::events(true, (int) $entity->getState(), null, false) as $event) {
                    $this->recorder->invoice($entity, $event, true);
                }
                break;
            case 'creditmemo':
                $this->recorder->creditmemo($entity, true);
                break;
            case 'customer':
                $this->recorder->customer($entity);
                break;
            default:
                $this->recorder->product($entity);
        }
    }

    private function day(string $value): ?string
    {
        $date = DateTimeImmutable::createFromFormat('!Y-m-d', $value);
        return $date !== false && $date->format('Y-m-d') === $value ? $value : null;
    }
}
