<?php

declare(strict_types=1);

namespace Magento\Customer\Model;

use Magento\Framework\Model\AbstractModel;

class Customer extends AbstractModel
{
    public array $addresses = [];

    public function getAddresses()
    {
        return $this->addresses;
    }

    public function load($modelId, $field = null)
    {
        return $this;
    }
}
