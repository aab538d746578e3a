<?php

declare(strict_types=1);

namespace Magento\Catalog\Model\ResourceModel\Product;

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
