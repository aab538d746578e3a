<?php

declare(strict_types=1);

namespace Ledger\SageSync\Console\Command;

use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Pairing\PairingService;
use Magento\Framework\Console\Cli;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

/** bin/magento ledger:pairing:status — paired or not, with which merchant and key, and where to. */
class PairingStatus extends Command
{
    public function __construct(private PairingService $pairing, private Config $config)
    {
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->setName('ledger:pairing:status')
            ->setDescription('Shows whether this store is paired with Ledger (merchant, key id, endpoints)');
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $state = $this->pairing->state();
        $output->writeln($state->describe());
        if ($state->message !== null) {
            $output->writeln($state->message);
        }
        if ($state->credentials !== null) {
            $output->writeln('NATS: ' . ($this->config->natsUrl() ?: '-') . ' (reply inboxes under '
                . $state->credentials->inboxPrefix . '.)');
            $output->writeln('Gateway: ' . ($this->config->httpsUrl() ?: '-'));
        } elseif ($this->config->merchantId() !== '') {
            $output->writeln('Publishing with the hand-typed settings of merchant ' . $this->config->merchantId()
                . ' (advanced override).');
        }
        foreach ($this->config->problems() as $problem) {
            $output->writeln('<comment>' . $problem . '</comment>');
        }
        return $state->state === PairingState::PAIRED || $this->config->merchantId() !== ''
            ? Cli::RETURN_SUCCESS
            : Cli::RETURN_FAILURE;
    }
}
