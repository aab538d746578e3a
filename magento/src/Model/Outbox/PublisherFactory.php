<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Outbox;

use Ledger\SageSync\Core\Http\HttpsPublisher;
use Ledger\SageSync\Core\Http\HttpTransport;
use Ledger\SageSync\Core\Nats\NatsPublisher;
use Ledger\SageSync\Core\Publish\FailoverPublisher;
use Ledger\SageSync\Core\Publish\PublisherInterface;
use Ledger\SageSync\Model\Config;

/** Builds the publisher the configuration asks for; throws InvalidArgumentException when incomplete. */
class PublisherFactory
{
    public function __construct(private Config $config, private HttpTransport $http)
    {
    }

    public function create(bool $quick = false): PublisherInterface
    {
        $transport = $this->config->transport();
        $httpsConfigured = $this->config->httpsUrl() !== '' && $this->config->httpsKey() !== '';
        if ($transport === Config::TRANSPORT_HTTPS) {
            return $this->https($quick);
        }
        $nats = NatsPublisher::withOptions($this->config->natsOptions($quick));
        if ($transport === Config::TRANSPORT_NATS_HTTPS && $httpsConfigured) {
            return new FailoverPublisher($nats, $this->https($quick));
        }
        return $nats;
    }

    private function https(bool $quick): HttpsPublisher
    {
        return new HttpsPublisher(
            $this->config->httpsUrl(),
            $this->config->httpsKey(),
            $this->http,
            $quick ? 2.0 : 10.0
        );
    }
}
