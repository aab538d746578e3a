<?php

declare(strict_types=1);

namespace Magento\Sales\Api;

interface TransactionRepositoryInterface
{
    /** @return \Magento\Sales\Api\Data\TransactionInterface|false */
    public function getByTransactionId($transactionId, $paymentId, $orderId);
}
