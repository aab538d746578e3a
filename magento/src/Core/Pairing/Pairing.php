<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

use Ledger\SageSync\Core\Clock;
use Ledger\SageSync\Core\Publish\TransportException;

/**
 * Pairing as the merchant sees it: generate a code, wait until it is entered on Ledger's side
 * (polled from cron and the admin page), keep the delivered key, and disconnect (revoke + forget).
 *
 * A code is given up locally once it expires, so nothing polls for a dead code. Network trouble
 * while polling never loses the pairing: it is reported as a warning and tried again.
 */
final class Pairing
{
    public function __construct(
        private PairingClient $client,
        private PairingStore $store,
        private Clock $clock,
    ) {
    }

    /** What is stored now. */
    public function state(): PairingState
    {
        return PairingState::of($this->store, $this->clock->now());
    }

    /**
     * Asks the gateway for a new code, replacing any code still waiting.
     *
     * @param array{store_url?: string, store_name?: string, module_version?: string} $about
     * @throws PairingException when already paired or the gateway refuses
     * @throws TransportException when the gateway cannot be reached
     */
    public function start(string $gatewayUrl, array $about = []): PairingState
    {
        if ($this->store->credentials() !== null) {
            throw new PairingException('This store is already paired with Ledger; disconnect it first.');
        }
        $pending = $this->client->start($gatewayUrl, $about, $this->clock->now());
        $this->store->savePending($pending);
        $this->store->saveMessage(null);
        return $this->state();
    }

    /** Polls once if a code is waiting; a no-op otherwise. */
    public function check(): PairingState
    {
        $pending = $this->store->pending();
        if ($pending === null || $this->store->credentials() !== null) {
            return $this->state();
        }
        $now = $this->clock->now();
        if ($pending->isExpired($now)) {
            $this->store->savePending(null);
            $this->store->saveMessage('The pairing code ' . $pending->code . ' expired before it was entered. '
                . 'Generate a new code.');
            return $this->state();
        }
        try {
            $answer = $this->client->poll($pending, $now);
        } catch (TransportException $e) {
            return PairingState::of($this->store, $now, 'Could not reach Ledger, still waiting: ' . $e->getMessage());
        } catch (PairingException $e) {
            $this->fail($e->getMessage());
            return $this->state();
        }
        if ($answer->state === PollAnswer::PAIRED && $answer->credentials !== null) {
            // Delivered once only: keep the credentials before anything else can fail.
            $this->store->saveCredentials($answer->credentials);
            $this->store->savePending(null);
            $this->store->saveMessage(null);
        } elseif ($answer->state === PollAnswer::FAILED) {
            $this->fail((string) $answer->message);
        }
        return $this->state();
    }

    /**
     * Revokes the key at the gateway and forgets it, with the merchant id, locally.
     *
     * @param bool $force forget locally even when the gateway cannot be reached (the key stays
     *     valid at Ledger until revoked there)
     * @throws TransportException|PairingException when the gateway cannot revoke and $force is off
     */
    public function disconnect(bool $force = false): PairingState
    {
        $credentials = $this->store->credentials();
        $this->store->savePending(null);
        if ($credentials === null) {
            return $this->state();
        }
        $note = '';
        try {
            $this->client->revoke($credentials);
        } catch (TransportException | PairingException | \InvalidArgumentException $e) {
            if (!$force) {
                throw $e;
            }
            $note = ' The gateway could not revoke key ' . $credentials->keyId . ' (' . $e->getMessage()
                . '); revoke it on the Ledger side.';
        }
        $this->store->saveCredentials(null);
        $this->store->saveMessage('Disconnected from Ledger (merchant ' . $credentials->merchantId . ', key '
            . $credentials->keyId . '). Nothing is published until the store is paired again.' . $note);
        return $this->state();
    }

    private function fail(string $message): void
    {
        $this->store->savePending(null);
        $this->store->saveMessage('Pairing failed: ' . ($message !== '' ? $message : 'refused by the gateway.'));
    }
}
