<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Model\Recorder;
use Magento\Customer\Model\Address;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;

/**
 * customer_address_save_after: the customer's billing address or VAT id changed, so the customer
 * is saved again (into the same open outbox row when it is not published yet).
 */
class CustomerAddressSaveAfter implements ObserverInterface
{
    public function __construct(private Recorder $recorder)
    {
    }

    public function execute(Observer $observer): void
    {
        $address = $observer->getEvent()->getData('customer_address');
        if (!$address instanceof Address || !$address->getCustomerId() || !$this->recorder->isEnabled()) {
            return;
        }
        $customer = $address->getCustomer();
        if ($customer !== null && $customer->getId()) {
            $this->recorder->customer($customer, $address);
        }
    }
}
