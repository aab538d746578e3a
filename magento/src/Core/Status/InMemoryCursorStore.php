<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Status;

final class InMemoryCursorStore implements CursorStore
{
    /** @var list<string> every cursor saved, oldest first */
    public array $saved = [];

    public function __construct(private ?string $cursor = null)
    {
    }

    public function load(): ?string
    {
        return $this->cursor;
    }

    public function save(string $cursor): void
    {
        $this->cursor = $cursor;
        $this->saved[] = $cursor;
    }
}
