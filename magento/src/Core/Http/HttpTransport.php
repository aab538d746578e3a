<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Http;

use Ledger\SageSync\Core\Publish\TransportException;

interface HttpTransport
{
    /**
     * @param array<string, string> $headers
     * @throws TransportException when no HTTP answer was received
     */
    public function post(string $url, array $headers, string $body, float $timeout): HttpResponse;
}
