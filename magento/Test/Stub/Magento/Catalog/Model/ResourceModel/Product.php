<?php

declare(strict_types=1);

namespace Magento\Catalog\Model\ResourceModel;

/** The product resource model; only the raw attribute read, from an array [product id][attribute]. */
class Product
{
    /** @var array<int, array<string, mixed>> */
    public array $raw = [];

    /** @var list<array{int, string, mixed}> */
    public array $reads = [];

    public function getAttributeRawValue($entityId, $attribute, $store)
    {
        $this->reads[] = [(int) $entityId, (string) $attribute, $store];
        return $this->raw[(int) $entityId][$attribute] ?? false;
    }
}
