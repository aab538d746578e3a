<?php

declare(strict_types=1);

namespace Magento\Tax\Api;

interface OrderTaxManagementInterface
{
    /** @return \Magento\Tax\Api\Data\OrderTaxDetailsInterface */
    public function getOrderTaxDetails($orderId);
}
