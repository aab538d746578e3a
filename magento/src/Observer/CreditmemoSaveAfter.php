<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Core\Outbox\CreditmemoEventPolicy;
use Ledger\SageSync\Model\NewEntityRegistry;
use Ledger\SageSync\Model\Recorder;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;
use Magento\Sales\Model\Order\Creditmemo;

/**
 * sales_order_creditmemo_save_after, inside the refund's transaction: creditmemo.created once,
 * then creditmemo.refunded or creditmemo.canceled when a pending credit memo reaches that state
 * (see CreditmemoEventPolicy).
 */
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
        if (!$creditmemo->getId() || !$this->recorder->isEnabled()) {
            return;
        }
        $originalState = $creditmemo->getOrigData('state');
        $events = CreditmemoEventPolicy::events(
            $isNew,
            (int) $creditmemo->getState(),
            $originalState === null ? null : (int) $originalState
        );
        foreach ($events as $type) {
            $this->recorder->creditmemo($creditmemo, false, $type);
        }
    }
}
