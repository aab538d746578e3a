<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

/**
 * The fingerprint of the last payload recorded for each customer and product (and product scope),
 * so that a save which changes nothing the contract carries records no event. Written in the same
 * transaction as the outbox row it describes.
 */
interface PayloadHashStore
{
    /** The fingerprint last recorded for the entity, or null when none was. */
    public function last(string $entityType, int $entityId, int $scope): ?string;

    /** Records the fingerprint of the payload just written to the outbox for the entity. */
    public function remember(string $entityType, int $entityId, int $scope, string $hash): void;
}
