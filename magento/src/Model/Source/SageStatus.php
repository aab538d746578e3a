<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Source;

use Ledger\SageSync\Core\Status\SageStatus as Status;
use Magento\Framework\Data\OptionSourceInterface;

/** Options of the "Sage Status" grid column and its select filter. */
class SageStatus implements OptionSourceInterface
{
    public function toOptionArray(): array
    {
        $options = [];
        foreach (Status::cases() as $status) {
            $options[] = ['value' => $status->value, 'label' => __($status->label())];
        }
        return $options;
    }
}
