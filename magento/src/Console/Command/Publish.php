<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use Ledger\SageSync\Model\Outbox\RelayRunner;
use Magento\Framework\Console\Cli;
use RuntimeException;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;

/** bin/magento ledger:outbox:publish [--limit=N] — what the cron job does, now. */
class Publish extends Command
{
    public function __construct(private RelayRunner $runner)
    {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:outbox:publish')
            ->setDescription('Publishes due Ledger events now (the cron job does this every minute)')
            ->addOption('limit', null, InputOption::VALUE_REQUIRED, 'Maximum number of events');
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $limit = $input->getOption('limit');
        try {
            $result = $this->runner->run($limit === null ? null : max(1, (int) $limit), 300.0);
        } catch (RuntimeException $e) {
            $output->writeln('<error>' . $e->getMessage() . '</error>');
            return Cli::RETURN_FAILURE;
        }
        if ($result === null) {
            $output->writeln('Another publisher is running; try again in a minute.');
            return Cli::RETURN_SUCCESS;
        }
        $output->writeln($result->summary());
        return $result->stoppedBy === null || $result->stoppedBy === 'time limit'
            ? Cli::RETURN_SUCCESS
            : Cli::RETURN_FAILURE;
    }
}
