<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Status;

use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Core\Status\HttpsStatusFeed;
use Ledger\SageSync\Core\Status\StatusFeed;
use Ledger\SageSync\Model\Config;

/**
 * The status feed of the configured gateway: GET /v1/status with the HTTPS fallback's URL and
 * ingest key (Stores > Configuration > Ledger Sage Sync > HTTPS). Without both nothing is read.
 */
class ConfiguredStatusFeed implements StatusFeed
{
    public function __construct(private Config $config, private HttpReader $http)
    {
    }

    public function configured(): bool
    {
        return $this->config->httpsUrl() !== '' && $this->config->httpsKey() !== '';
    }

    public function fetch(?string $cursor, int $limit): array
    {
        if (!$this->configured()) {
            return ['updates' => [], 'cursor' => $cursor, 'more' => false];
        }
        return (new HttpsStatusFeed($this->config->httpsUrl(), $this->config->httpsKey(), $this->http, 10.0))
            ->fetch($cursor, $limit);
    }
}
