<?php

declare(strict_types=1);

namespace Magento\Sales\Model\Order;

use Magento\Framework\Model\AbstractModel;
use Magento\Sales\Model\Order;

class Invoice extends AbstractModel
{
    public array $items = [];
    public ?Order $order = null;
    public bool $payCalled = false;

    public function getAllItems()
    {
        return $this->items;
    }

    public function getOrder()
    {
        if ($this->order === null) {
            throw new \RuntimeException('order not loaded');
        }
        return $this->order;
    }

    public function wasPayCalled()
    {
        return $this->payCalled;
    }
}
