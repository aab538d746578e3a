<?php

declare(strict_types=1);

namespace Magento\Customer\Model;

class CustomerFactory
{
    public function create(array $data = [])
    {
        return new Customer($data);
    }
}
