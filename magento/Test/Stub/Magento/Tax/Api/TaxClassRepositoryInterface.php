<?php

declare(strict_types=1);

namespace Magento\Tax\Api;

interface TaxClassRepositoryInterface
{
    /** @return \Magento\Tax\Api\Data\TaxClassInterface */
    public function get($taxClassId);
}
