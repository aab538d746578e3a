<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Publish;

/** Nothing can be published right now; the relay stops its batch to keep the order. */
class TransportException extends PublishException
{
}
