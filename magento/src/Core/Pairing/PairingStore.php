<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

/**
 * Where the pairing lives between requests. The Magento store keeps it in core_config_data with
 * the secrets encrypted; tests and the end-to-end script keep it in memory or in a JSON file.
 */
interface PairingStore
{
    /** The code waiting to be entered, if any. */
    public function pending(): ?PendingPairing;

    /** Replaces (or, with null, forgets) the waiting code. */
    public function savePending(?PendingPairing $pending): void;

    /** This store's Ledger credentials, if paired. */
    public function credentials(): ?Credentials;

    /** Replaces (or, with null, forgets) the credentials. */
    public function saveCredentials(?Credentials $credentials): void;

    /** The last outcome worth showing the merchant (expired, refused, disconnected…). */
    public function message(): ?string;

    /** Replaces (or clears) that message. */
    public function saveMessage(?string $message): void;
}
