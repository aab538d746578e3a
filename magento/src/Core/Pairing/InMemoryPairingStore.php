<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

/** A pairing store without persistence, for tests and scripts that save it themselves. */
final class InMemoryPairingStore implements PairingStore
{
    public function __construct(
        private ?PendingPairing $pending = null,
        private ?Credentials $credentials = null,
        private ?string $message = null,
    ) {
    }

    public function pending(): ?PendingPairing
    {
        return $this->pending;
    }

    public function savePending(?PendingPairing $pending): void
    {
        $this->pending = $pending;
    }

    public function credentials(): ?Credentials
    {
        return $this->credentials;
    }

    public function saveCredentials(?Credentials $credentials): void
    {
        $this->credentials = $credentials;
    }

    public function message(): ?string
    {
        return $this->message;
    }

    public function saveMessage(?string $message): void
    {
        $this->message = $message;
    }
}
