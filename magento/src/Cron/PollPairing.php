<?php

declare(strict_types=1);

namespace Ledger\SageSync\Cron;

use Ledger\SageSync\Model\Pairing\PairingService;
use Psr\Log\LoggerInterface;
use Throwable;

/**
 * Every minute: while a pairing code is waiting, ask Ledger whether it was entered. Outbound only
 * (no callback URL), so it works behind any firewall that lets the store reach the gateway.
 */
class PollPairing
{
    public function __construct(private PairingService $pairing, private LoggerInterface $logger)
    {
    }

    /** One poll; a no-op unless a code is waiting. */
    public function execute(): void
    {
        try {
            // check() returns at once without a waiting code, and clears one that expired.
            $this->pairing->check();
        } catch (Throwable $e) {
            $this->logger->warning('Ledger Sage Sync: pairing poll failed (retried next run): ' . $e->getMessage());
        }
    }
}
