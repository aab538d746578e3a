<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Pairing;

use RuntimeException;

/** The gateway gave a definite "no" (bad request, unknown pairing, refused key); retrying will not help. */
class PairingException extends RuntimeException
{
}
