<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Model\Pairing\PairingService;
use Magento\Framework\Console\Cli;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;

/** bin/magento ledger:pairing:poll [--wait=SECONDS] — what the cron job does, now. */
class PairingPoll extends Command
{
    /** @param \Closure(int): void|null $sleep tests do not wait */
    public function __construct(private PairingService $pairing, private ?\Closure $sleep = null)
    {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:pairing:poll')
            ->setDescription('Asks Ledger whether the pairing code was entered and stores the key if so')
            ->addOption('wait', null, InputOption::VALUE_REQUIRED, 'Keep asking for up to this many seconds', '0');
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $until = microtime(true) + max(0, min(1800, (int) $input->getOption('wait')));
        $state = $this->pairing->check();
        while ($state->state === PairingState::PENDING && microtime(true) < $until) {
            ($this->sleep ?? static fn (int $s) => sleep($s))(max(1, $state->pending?->pollInterval ?? 5));
            $state = $this->pairing->check();
        }
        if ($state->warning !== null) {
            $output->writeln('<comment>' . $state->warning . '</comment>');
        }
        $output->writeln($state->describe());
        if ($state->message !== null && $state->state !== PairingState::PAIRED) {
            $output->writeln($state->message);
        }
        return $state->state === PairingState::NOT_PAIRED ? Cli::RETURN_FAILURE : Cli::RETURN_SUCCESS;
    }
}
