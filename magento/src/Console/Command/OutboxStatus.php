<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Magento\Framework\Console\Cli;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;

/** bin/magento ledger:outbox:status [--dead] */
class OutboxStatus extends Command
{
    public function __construct(private DbOutboxStore $store, private Config $config)
    {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:outbox:status')
            ->setDescription('Shows the Ledger outbox: events per status, dead letters, configuration problems')
            ->addOption('dead', null, InputOption::VALUE_NONE, 'List the unresolved dead letters');
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        foreach ($this->config->problems() as $problem) {
            $output->writeln('<comment>' . $problem . '</comment>');
        }
        $output->writeln('Ledger outbox (merchant ' . ($this->config->merchantId() ?: '-') . ')');
        foreach ($this->store->countByStatus() as $status => $count) {
            $output->writeln(sprintf('  %-10s %d', $status, $count));
        }
        $output->writeln('Oldest unpublished event: ' . ($this->store->oldestOpen() ?? '-') . ' (UTC)');
        $output->writeln('Last published: ' . ($this->store->lastPublished() ?? '-') . ' (UTC)');
        $dead = $this->store->unresolvedDeadLetters();
        $output->writeln('Unresolved dead letters: ' . $dead
            . ($dead > 0 ? ' (bin/magento ledger:outbox:retry-dead requeues them)' : ''));
        if ($input->getOption('dead')) {
            foreach ($this->store->deadLetters(50) as $letter) {
                $output->writeln(sprintf(
                    '  #%d %s %s, %d attempts, %s: %s',
                    (int) $letter['outbox_id'],
                    (string) $letter['event_type'],
                    (string) $letter['dedupe_key'],
                    (int) $letter['attempts'],
                    (string) $letter['created_at'],
                    (string) $letter['error']
                ));
            }
        }
        return Cli::RETURN_SUCCESS;
    }
}
