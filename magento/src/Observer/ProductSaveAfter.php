<?php

declare(strict_types=1);

namespace Ledger\SageSync\Observer;

use Ledger\SageSync\Model\Recorder;
use Magento\Catalog\Model\Product;
use Magento\Framework\Event\Observer;
use Magento\Framework\Event\ObserverInterface;

/** catalog_product_save_after, inside the save's transaction: product.saved for its store scope. */
class ProductSaveAfter implements ObserverInterface
{
    public function __construct(private Recorder $recorder)
    {
    }

    public function execute(Observer $observer): void
    {
        $product = $observer->getEvent()->getData('product');
        if ($product instanceof Product && $product->getId() && $this->recorder->isEnabled()) {
            $this->recorder->product($product);
        }
    }
}
