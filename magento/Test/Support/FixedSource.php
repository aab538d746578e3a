<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Ledger\SageSync\Core\Outbox\SourceInfo;

final class FixedSource implements SourceInfo
{
    public function source(): array
    {
        return ['module_version' => '0.2.0', 'magento_version' => '2.4.7-p3', 'magento_edition' => 'Community'];
    }
}
