<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Magento\Store\Api\Data\StoreInterface;
use Magento\Store\Model\StoreManagerInterface;

/** Store views 1 and 2 belong to website 1, store view 3 to website 2. */
final class StubStores implements StoreManagerInterface
{
    public function getStore($storeId = null)
    {
        $website = ['1' => 1, '2' => 1, '3' => 2][(string) $storeId] ?? null;
        if ($website === null) {
            throw new \Magento\Framework\Exception\NoSuchEntityException('no store ' . $storeId);
        }
        return new class ($website) implements StoreInterface {
            public function __construct(private int $website)
            {
            }

            public function getWebsiteId()
            {
                return $this->website;
            }
        };
    }
}
