<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

/**
 * pending → published; pending → retry (with backoff) → … → published | dead.
 * dead → pending only by an operator (ledger:outbox:retry-dead).
 */
enum OutboxStatus: string
{
    case Pending = 'pending';
    case Retry = 'retry';
    case Published = 'published';
    case Dead = 'dead';

    /** Not yet confirmed by JetStream (or the gateway). */
    public function isOpen(): bool
    {
        return $this !== self::Published;
    }
}
