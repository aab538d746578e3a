<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

/** PayloadHashStore in memory, for tests and tools. */
final class InMemoryPayloadHashStore implements PayloadHashStore
{
    /** @var array<string, string> */
    private array $hashes = [];

    public function last(string $entityType, int $entityId, int $scope): ?string
    {
        return $this->hashes[$this->key($entityType, $entityId, $scope)] ?? null;
    }

    public function remember(string $entityType, int $entityId, int $scope, string $hash): void
    {
        $this->hashes[$this->key($entityType, $entityId, $scope)] = $hash;
    }

    private function key(string $entityType, int $entityId, int $scope): string
    {
        return $entityType . ':' . $entityId . ':' . $scope;
    }
}
