<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Publish;

use RuntimeException;

/** This message was not stored; retry it later. */
class PublishException extends RuntimeException
{
}
