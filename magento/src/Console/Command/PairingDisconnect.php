<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use Ledger\SageSync\Model\Pairing\PairingService;
use Magento\Framework\Console\Cli;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;
use Throwable;

/** bin/magento ledger:pairing:disconnect [--force] — revokes the store's key and forgets it. */
class PairingDisconnect extends Command
{
    public function __construct(private PairingService $pairing)
    {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:pairing:disconnect')
            ->setDescription('Revokes this store\'s Ledger key and forgets it; publishing stops, events wait')
            ->addOption('force', null, InputOption::VALUE_NONE, 'Forget the key even if Ledger cannot be reached');
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        try {
            $state = $this->pairing->disconnect((bool) $input->getOption('force'));
        } catch (Throwable $e) {
            $output->writeln('<error>' . $e->getMessage() . ' (still paired; --force forgets the key anyway)</error>');
            return Cli::RETURN_FAILURE;
        }
        $output->writeln($state->message ?? $state->describe());
        return Cli::RETURN_SUCCESS;
    }
}
