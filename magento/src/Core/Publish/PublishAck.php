<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Publish;

/**
 * The broker's confirmation: JetStream's PubAck {"stream":…,"seq":…,"duplicate":…}, or the
 * gateway's 202 answer (which names no stream).
 */
final class PublishAck
{
    public function __construct(
        public readonly ?string $stream,
        public readonly int $sequence,
        public readonly bool $duplicate,
        public readonly string $transport,
    ) {
    }
}
