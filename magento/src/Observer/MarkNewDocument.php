<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Model\NewEntityRegistry;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;
use Magento\Framework\Model\AbstractModel;

/** *_save_before of invoices and credit memos: remember which ones are being created. */
class MarkNewDocument implements ObserverInterface
{
    public function __construct(private NewEntityRegistry $registry)
    {
    }

    public function execute(Observer $observer): void
    {
        $document = $observer->getEvent()->getData('data_object');
        if ($document instanceof AbstractModel && ($document->isObjectNew() || !$document->getId())) {
            $this->registry->markNew($document);
        }
    }
}
