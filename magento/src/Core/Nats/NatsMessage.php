<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Nats;

/** A delivered MSG/HMSG. Status messages (503 no responders, 408 timeout) have $status set. */
final class NatsMessage
{
    /** @param array<string, list<string>> $headers */
    public function __construct(
        public readonly string $subject,
        public readonly ?string $replyTo,
        public readonly string $body,
        public readonly array $headers = [],
        public readonly ?int $status = null,
        public readonly string $statusText = '',
    ) {
    }

    public function header(string $name): ?string
    {
        foreach ($this->headers as $key => $values) {
            if (strcasecmp($key, $name) === 0) {
                return $values[0] ?? null;
            }
        }
        return null;
    }
}
