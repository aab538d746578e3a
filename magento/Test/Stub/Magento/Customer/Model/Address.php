<?php

declare(strict_types=1);

namespace Magento\Customer\Model;

use Magento\Framework\Model\AbstractModel;

class Address extends AbstractModel
{
    public ?Customer $customer = null;

    public function getCustomer()
    {
        return $this->customer;
    }

    public function getRegionCode()
    {
        return $this->getData('region_code');
    }
}
