<?php

declare(strict_types=1);

namespace Magento\Sales\Model\Order;

use Magento\Framework\Model\AbstractModel;

class Payment extends AbstractModel
{
}
