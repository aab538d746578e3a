<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Publish;

/**
 * Sends one event and returns only once it is stored (PubAck), or throws:
 *  - TransportException: nothing can be sent right now (broker down, wrong credentials, no stream);
 *  - RejectedException: this message will never be accepted (contract violation, too large);
 *  - PublishException: this message failed, try it again later.
 */
interface PublisherInterface
{
    public function publish(OutboundMessage $message): PublishAck;

    /** Releases connections; the publisher reconnects on the next publish. */
    public function close(): void;
}
