<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use Ledger\SageSync\Core\Clock;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Magento\Framework\Console\Cli;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;

/** bin/magento ledger:outbox:retry-dead [--id=N ...] */
class RetryDead extends Command
{
    public function __construct(private DbOutboxStore $store, private Clock $clock)
    {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:outbox:retry-dead')
            ->setDescription('Puts dead-lettered Ledger events back in the queue (all, or the given outbox ids)')
            ->addOption(
                'id',
                null,
                InputOption::VALUE_REQUIRED | InputOption::VALUE_IS_ARRAY,
                'Outbox id (repeatable)'
            );
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $ids = [];
        foreach ((array) $input->getOption('id') as $id) {
            if (!ctype_digit((string) $id)) {
                $output->writeln('<error>Not an outbox id: ' . $id . '</error>');
                return Cli::RETURN_FAILURE;
            }
            $ids[] = (int) $id;
        }
        $count = $this->store->requeueDead($ids, $this->clock->now());
        $output->writeln($count . ' event(s) requeued; the next publisher run sends them.');
        return Cli::RETURN_SUCCESS;
    }
}
