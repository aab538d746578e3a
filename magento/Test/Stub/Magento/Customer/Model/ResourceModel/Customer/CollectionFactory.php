<?php

declare(strict_types=1);

namespace Magento\Customer\Model\ResourceModel\Customer;

use Magento\Framework\Data\Collection;

class CollectionFactory
{
    public array $items = [];
    public ?Collection $last = null;

    public function create(array $data = [])
    {
        return $this->last = new Collection($this->items);
    }
}
