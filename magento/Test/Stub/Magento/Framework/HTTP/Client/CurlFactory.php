<?php

declare(strict_types=1);

namespace Magento\Framework\HTTP\Client;

/** Stand-in for the factory Magento generates for its HTTP client. */
class CurlFactory
{
    /** @param array<string, mixed> $data */
    public function create(array $data = []): Curl
    {
        return new Curl();
    }
}
