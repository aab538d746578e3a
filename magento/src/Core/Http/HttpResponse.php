<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Http;

final class HttpResponse
{
    public function __construct(public readonly int $status, public readonly string $body)
    {
    }
}
