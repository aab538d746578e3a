<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Source;

use Ledger\SageSync\Model\Config;
use Magento\Framework\Data\OptionSourceInterface;

class Transport implements OptionSourceInterface
{
    public function toOptionArray(): array
    {
        return [
            ['value' => Config::TRANSPORT_NATS_HTTPS, 'label' => __('NATS, HTTPS gateway when NATS is unreachable')],
            ['value' => Config::TRANSPORT_NATS, 'label' => __('NATS only')],
            ['value' => Config::TRANSPORT_HTTPS, 'label' => __('HTTPS gateway only')],
        ];
    }
}
