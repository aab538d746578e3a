<?php

declare(strict_types=1);

namespace Magento\Sales\Model;

use Magento\Framework\Model\AbstractModel;
use Magento\Sales\Model\Order\Address;
use Magento\Sales\Model\Order\Payment;

class Order extends AbstractModel
{
    public array $items = [];
    public ?Address $billingAddress = null;
    public ?Address $shippingAddress = null;
    public ?Payment $payment = null;
    /** @var list<\Magento\Sales\Model\Order\Invoice> */
    public array $invoices = [];

    public function getAllItems()
    {
        return $this->items;
    }

    public function getBillingAddress()
    {
        return $this->billingAddress;
    }

    public function getShippingAddress()
    {
        return $this->shippingAddress;
    }

    public function getPayment()
    {
        return $this->payment;
    }

    public function getInvoiceCollection()
    {
        return $this->invoices;
    }
}
