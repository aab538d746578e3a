<?php

declare(strict_types=1);

namespace Ledger\SageSync\Cron;

use Ledger\SageSync\Core\Status\DocumentResolver;
use Ledger\SageSync\Core\Status\StatusFeed;
use Ledger\SageSync\Core\Status\StatusPull;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Status\FlagCursorStore;
use Magento\Framework\FlagManager;
use Psr\Log\LoggerInterface;
use Throwable;

/**
 * Every five minutes: apply Ledger's per-document outcomes (synced with the Sage reference,
 * skipped, failed) to the status tables and grids. The feed is the gateway's GET /v1/status
 * (Model\Status\ConfiguredStatusFeed, etc/di.xml); the cursor is kept in Magento's flag table
 * and only moves once a page's rows are written, so a failed run is read again next time.
 */
class PullStatus
{
    public const CURSOR_FLAG = FlagCursorStore::FLAG;
    public const PAGE_SIZE = 500;
    public const MAX_PAGES = 20;

    public function __construct(
        private Config $config,
        private StatusFeed $feed,
        private StatusSink $sink,
        private DocumentResolver $documents,
        private FlagManager $flags,
        private LoggerInterface $logger,
    ) {
    }

    public function execute(): void
    {
        if (!$this->config->isEnabled() || $this->config->merchantId() === '') {
            return;
        }
        try {
            $cursors = new FlagCursorStore($this->flags);
            (new StatusPull($this->feed, $this->sink, $this->documents, $cursors))
                ->run(self::PAGE_SIZE, self::MAX_PAGES);
        } catch (Throwable $e) {
            $this->logger->warning('Ledger Sage Sync: status pull failed (retried next run): ' . $e->getMessage());
        }
    }
}
