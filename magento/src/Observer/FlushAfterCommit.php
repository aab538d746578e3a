<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Outbox\RelayRunner;
use Magento\Framework\App\Area;
use Magento\Framework\App\State;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;
use Psr\Log\LoggerInterface;
use Throwable;

/**
 * *_save_commit_after of invoices and credit memos: after the admin's save is committed, try
 * to publish at once so the grid shows "Sent" without waiting for cron.
 *
 * Only in the admin area — never in checkout (frontend), the REST/GraphQL APIs or cron, where
 * nobody should wait on the network. Short timeouts, one attempt per request, and every error
 * swallowed: the data is safely in the outbox and cron publishes it within a minute.
 */
class FlushAfterCommit implements ObserverInterface
{
    private bool $done = false;

    public function __construct(
        private Config $config,
        private State $appState,
        private RelayRunner $runner,
        private LoggerInterface $logger,
    ) {
    }

    public function execute(Observer $observer): void
    {
        if ($this->done || !$this->config->isEnabled() || !$this->config->flushAfterCommit()) {
            return;
        }
        try {
            if ($this->appState->getAreaCode() !== Area::AREA_ADMINHTML) {
                return;
            }
        } catch (Throwable) {
            return;
        }
        $this->done = true;
        try {
            $this->runner->run(20, 3.0, true);
        } catch (Throwable $e) {
            $this->logger->info('Ledger Sage Sync: publish after save deferred to cron: ' . $e->getMessage());
        }
    }
}
