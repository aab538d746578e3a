<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core;

use DateTimeImmutable;

interface Clock
{
    /** The current time in UTC. */
    public function now(): DateTimeImmutable;
}
