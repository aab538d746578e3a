<?php

declare(strict_types=1);

namespace Magento\Store\Api\Data;

interface StoreInterface
{
    public function getWebsiteId();
}
