<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Outbox;

use Ledger\SageSync\Core\Clock;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\OutboxStore;
use Ledger\SageSync\Core\Outbox\PayloadRebuilder;
use Ledger\SageSync\Core\Outbox\Relay;
use Ledger\SageSync\Core\Outbox\RelayResult;
use Ledger\SageSync\Core\Outbox\RetryPolicy;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Model\Config;
use InvalidArgumentException;
use Magento\Framework\Lock\LockManagerInterface;
use RuntimeException;

/**
 * Runs the relay once, single-instance (a lock shared by cron, the CLI and the admin flush, so
 * events leave in order), with the current configuration.
 */
class RelayRunner
{
    public const LOCK = 'ledger_sage_sync_relay';

    public function __construct(
        private Config $config,
        private OutboxStore $store,
        private PublisherFactory $publishers,
        private EnvelopeFactory $envelopes,
        private Clock $clock,
        private StatusSink $status,
        private PayloadRebuilder $rebuilder,
        private LockManagerInterface $locks,
    ) {
    }

    /**
     * @return RelayResult|null null when another run holds the lock
     * @throws RuntimeException when the configuration is incomplete
     */
    public function run(?int $limit = null, float $seconds = 50.0, bool $quick = false): ?RelayResult
    {
        $problems = $this->config->problems();
        if ($problems !== []) {
            throw new RuntimeException('not publishing: ' . implode(' ', $problems));
        }
        if (!$this->locks->lock(self::LOCK, 0)) {
            return null;
        }
        try {
            return $this->relay($limit, $seconds, $quick);
        } catch (InvalidArgumentException $e) {
            // A URL, key or merchant id the admin saved that cannot work: report, do not crash cron.
            throw new RuntimeException('not publishing: ' . $e->getMessage(), 0, $e);
        } finally {
            $this->locks->unlock(self::LOCK);
        }
    }

    private function relay(?int $limit, float $seconds, bool $quick): RelayResult
    {
        $relay = new Relay(
            $this->store,
            $this->publishers->create($quick),
            $this->envelopes,
            new RetryPolicy($this->config->maxAttempts()),
            $this->clock,
            $this->status,
            $this->rebuilder
        );
        return $relay->run(
            $this->config->merchantId(),
            $limit ?? $this->config->batchSize(),
            microtime(true) + $seconds
        );
    }
}
