<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Snapshot;

use RuntimeException;

/** A Magento document could not be turned into a contract payload. */
final class SnapshotException extends RuntimeException
{
}
