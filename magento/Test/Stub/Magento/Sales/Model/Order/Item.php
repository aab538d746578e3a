<?php

declare(strict_types=1);

namespace Magento\Sales\Model\Order;

use Magento\Framework\Model\AbstractModel;

class Item extends AbstractModel
{
    protected string $idFieldName = 'item_id';
    public bool $dummy = false;

    public function isDummy($shipment = false)
    {
        return $this->dummy;
    }
}
