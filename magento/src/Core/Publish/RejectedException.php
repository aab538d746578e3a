<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Publish;

/** The message itself is refused and will be on every retry: it goes to the dead letters. */
class RejectedException extends PublishException
{
}
