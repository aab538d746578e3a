<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Model\Recorder;
use Magento\Customer\Model\Customer;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;

/** customer_save_after, inside the save's transaction: customer.saved (coalesced until published). */
class CustomerSaveAfter implements ObserverInterface
{
    public function __construct(private Recorder $recorder)
    {
    }

    public function execute(Observer $observer): void
    {
        $customer = $observer->getEvent()->getData('customer');
        if ($customer instanceof Customer && $customer->getId() && $this->recorder->isEnabled()) {
            $this->recorder->customer($customer);
        }
    }
}
