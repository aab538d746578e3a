<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Pairing;

use Ledger\SageSync\Core\Clock;
use Ledger\SageSync\Core\Pairing\Pairing;
use Ledger\SageSync\Core\Pairing\PairingClient;
use Ledger\SageSync\Core\Pairing\PairingException;
use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Model\Config;
use Magento\Framework\Lock\LockManagerInterface;
use Psr\Log\LoggerInterface;

/**
 * Pairing for the admin page, the CLI and cron, serialised by a lock: the credentials are handed
 * out once, so two pollers must not race for them.
 */
class PairingService
{
    public const LOCK = 'ledger_sage_sync_pairing';

    public function __construct(
        private Config $config,
        private ConfigPairingStore $store,
        private PairingClient $client,
        private Clock $clock,
        private LockManagerInterface $locks,
        private LoggerInterface $logger,
    ) {
    }

    /** The stored state, without asking the gateway. */
    public function state(): PairingState
    {
        return $this->pairing()->state();
    }

    /**
     * Requests a new code from the configured gateway.
     *
     * @throws PairingException|\Ledger\SageSync\Core\Publish\TransportException|\InvalidArgumentException
     */
    public function start(): PairingState
    {
        return $this->locked(10, function (): PairingState {
            $state = $this->pairing()->start($this->config->pairingGatewayUrl(), $this->config->storeDetails());
            $this->logger->info('Ledger Sage Sync: pairing code ' . $state->pending?->code . ' requested, valid until '
                . $state->pending?->expiresAt->format(DATE_ATOM));
            return $state;
        });
    }

    /** Polls once when a code is waiting; another poller holding the lock means "ask again later". */
    public function check(): PairingState
    {
        if (!$this->locks->lock(self::LOCK, 0)) {
            return $this->state();
        }
        try {
            $before = $this->store->pending();
            $state = $this->pairing()->check();
        } finally {
            $this->locks->unlock(self::LOCK);
        }
        if ($state->warning !== null) {
            $this->logger->warning('Ledger Sage Sync: ' . $state->warning);
        } elseif ($before !== null && $state->state === PairingState::PAIRED) {
            $this->logger->info('Ledger Sage Sync: paired as merchant ' . $state->credentials?->merchantId
                . ' with key ' . $state->credentials?->keyId);
        } elseif ($before !== null && $state->state === PairingState::NOT_PAIRED) {
            $this->logger->warning('Ledger Sage Sync: ' . $state->message);
        }
        return $state;
    }

    /**
     * Revokes the key at the gateway and forgets it locally.
     *
     * @throws PairingException|\Ledger\SageSync\Core\Publish\TransportException when not forced
     */
    public function disconnect(bool $force = false): PairingState
    {
        return $this->locked(10, function () use ($force): PairingState {
            $state = $this->pairing()->disconnect($force);
            $this->logger->info('Ledger Sage Sync: ' . $state->message);
            return $state;
        });
    }

    private function pairing(): Pairing
    {
        return new Pairing($this->client, $this->store, $this->clock);
    }

    /** @param callable(): PairingState $work */
    private function locked(int $seconds, callable $work): PairingState
    {
        if (!$this->locks->lock(self::LOCK, $seconds)) {
            throw new PairingException('Another pairing request is running; try again in a moment.');
        }
        try {
            return $work();
        } finally {
            $this->locks->unlock(self::LOCK);
        }
    }
}
