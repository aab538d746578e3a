<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use Ledger\SageSync\Model\Pairing\PairingService;
use Magento\Framework\Console\Cli;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;
use Throwable;

/** bin/magento ledger:pairing:start — prints a pairing code to enter on Ledger's side. */
class PairingStart extends Command
{
    public function __construct(private PairingService $pairing)
    {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:pairing:start')
            ->setDescription('Requests a Ledger pairing code (valid 30 minutes, single use) and prints it');
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        try {
            $state = $this->pairing->start();
        } catch (Throwable $e) {
            $output->writeln('<error>' . $e->getMessage() . '</error>');
            return Cli::RETURN_FAILURE;
        }
        $output->writeln((string) $state->pending?->code);
        $output->writeln($state->describe());
        $output->writeln('Cron collects the key every minute, or run bin/magento ledger:pairing:poll.');
        return Cli::RETURN_SUCCESS;
    }
}
