<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Publish;

/** One envelope ready to send: subject, JSON body and NATS headers. */
final class OutboundMessage
{
    /** @param array<string, string> $headers */
    public function __construct(
        public readonly string $eventId,
        public readonly string $subject,
        public readonly string $body,
        public readonly array $headers,
    ) {
    }
}
