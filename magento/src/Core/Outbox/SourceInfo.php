<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Outbox;

/** The envelope's "source": what produced the event. */
interface SourceInfo
{
    /** @return array{module_version: string, magento_version: string, magento_edition: ?string} */
    public function source(): array;
}
