<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

/** The gateway's answer to one poll: still pending, paired (with the credentials) or failed for good. */
final class PollAnswer
{
    public const PENDING = 'pending';
    public const PAIRED = 'paired';
    public const FAILED = 'failed';

    public function __construct(
        public readonly string $state,
        public readonly ?Credentials $credentials = null,
        public readonly ?string $error = null,
        public readonly ?string $message = null,
    ) {
    }
}
