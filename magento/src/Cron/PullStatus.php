<?php

declare(strict_types=1);

namespace Ledger\SageSync\Cron;

use Ledger\SageSync\Core\Status\StatusFeed;
use Ledger\SageSync\Core\Status\StatusPull;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Model\Config;
use Magento\Framework\FlagManager;
use Psr\Log\LoggerInterface;
use Throwable;

/**
 * Every five minutes: apply Ledger's per-document outcomes (synced with the Sage reference,
 * skipped, failed) to the status tables and grids. The feed is NullStatusFeed until Ledger
 * offers one (etc/di.xml preference); the cursor is kept in Magento's flag table.
 */
class PullStatus
{
    public const CURSOR_FLAG = 'ledger_sage_sync_status_cursor';

    public function __construct(
        private Config $config,
        private StatusFeed $feed,
        private StatusSink $sink,
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
            $cursor = $this->flags->getFlagData(self::CURSOR_FLAG);
            $result = (new StatusPull($this->feed, $this->sink))->run(is_string($cursor) ? $cursor : null);
            if ($result['cursor'] !== null && $result['cursor'] !== $cursor) {
                $this->flags->saveFlag(self::CURSOR_FLAG, $result['cursor']);
            }
        } catch (Throwable $e) {
            $this->logger->warning('Ledger Sage Sync: status pull failed: ' . $e->getMessage());
        }
    }
}
