<?php

declare(strict_types=1);

namespace Ledger\SageSync\Cron;

use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Outbox\RelayRunner;
use Psr\Log\LoggerInterface;
use RuntimeException;

/** Every minute (own cron group): publish due outbox rows in order. */
class PublishOutbox
{
    public function __construct(
        private Config $config,
        private RelayRunner $runner,
        private LoggerInterface $logger,
    ) {
    }

    public function execute(): void
    {
        if (!$this->config->isEnabled()) {
            return;
        }
        try {
            $result = $this->runner->run();
        } catch (RuntimeException $e) {
            $this->logger->warning('Ledger Sage Sync: ' . $e->getMessage());
            return;
        }
        if ($result === null) {
            $this->logger->info('Ledger Sage Sync: another publisher is running');
        } elseif ($result->published + $result->retried + $result->dead > 0 || $result->stoppedBy !== null) {
            $this->logger->info('Ledger Sage Sync: ' . $result->summary());
        }
    }
}
