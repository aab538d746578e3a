<?php

declare(strict_types=1);

namespace Magento\Sales\Api;

interface CreditmemoRepositoryInterface
{
    public function get($id);
}
