<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Http;

use Ledger\SageSync\Core\Publish\TransportException;

interface HttpReader
{
    /**
     * @param array<string, string> $headers
     * @throws TransportException when no HTTP answer was received (refused, timed out, TLS)
     */
    public function get(string $url, array $headers, float $timeout): HttpResponse;
}
