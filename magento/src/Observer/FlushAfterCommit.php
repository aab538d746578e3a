<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Outbox\RelayRunner;
use Magento\Framework\App\Area;
use Magento\Framework\App\State;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;
use Magento\Framework\FlagManager;
use Psr\Log\LoggerInterface;
use Throwable;

/**
 * *_save_commit_after of invoices and credit memos: after the admin's save is committed, try
 * to publish at once so the grid shows "Sent" without waiting for cron.
 *
 * Only in the admin area — never in checkout (frontend), the REST/GraphQL APIs or cron, where
 * nobody should wait on the network. Short timeouts, one attempt per request, and every error
 * swallowed: the data is safely in the outbox and cron publishes it within a minute.
 *
 * When Ledger cannot be reached (the run stopped on a transport failure), the after-commit
 * publish pauses for PAUSE_SECONDS (a flag, shared by every admin request): during an outage
 * where connections time out rather than being refused, each admin save would otherwise wait
 * for the connect timeout after its commit.
 */
class FlushAfterCommit implements ObserverInterface
{
    /** Flag (Magento's flag table) holding the Unix time until which the publish is paused. */
    public const PAUSE_FLAG = 'ledger_sage_sync_flush_paused_until';

    /** How long a failed attempt pauses the after-commit publish: cron's cadence. */
    public const PAUSE_SECONDS = 60;

    private bool $done = false;

    public function __construct(
        private Config $config,
        private State $appState,
        private RelayRunner $runner,
        private LoggerInterface $logger,
        private FlagManager $flags,
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
        if ($this->paused()) {
            return;
        }
        try {
            $result = $this->runner->run(20, 3.0, true);
            if ($result?->stoppedBy !== null) {
                $this->flags->saveFlag(self::PAUSE_FLAG, time() + self::PAUSE_SECONDS);
                $this->logger->info(sprintf(
                    'Ledger Sage Sync: publish after save paused for %d s, cron publishes meanwhile: %s',
                    self::PAUSE_SECONDS,
                    $result->stoppedBy
                ));
            }
        } catch (Throwable $e) {
            $this->logger->info('Ledger Sage Sync: publish after save deferred to cron: ' . $e->getMessage());
        }
    }

    private function paused(): bool
    {
        try {
            return (int) $this->flags->getFlagData(self::PAUSE_FLAG) > time();
        } catch (Throwable) {
            return false;
        }
    }
}
