<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Model\NewEntityRegistry;
use Ledger\SageSync\Model\Recorder;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;
use Magento\Sales\Model\Order\Creditmemo;

/** sales_order_creditmemo_save_after, inside the refund's transaction: creditmemo.created once. */
class CreditmemoSaveAfter implements ObserverInterface
{
    public function __construct(private Recorder $recorder, private NewEntityRegistry $registry)
    {
    }

    public function execute(Observer $observer): void
    {
        $creditmemo = $observer->getEvent()->getData('creditmemo');
        if (!$creditmemo instanceof Creditmemo) {
            return;
        }
        $isNew = $this->registry->takeNew($creditmemo);
        if ($isNew && $creditmemo->getId() && $this->recorder->isEnabled()) {
            $this->recorder->creditmemo($creditmemo);
        }
    }
}
