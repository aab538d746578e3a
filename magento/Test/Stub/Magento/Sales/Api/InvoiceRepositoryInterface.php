<?php

declare(strict_types=1);

namespace Magento\Sales\Api;

interface InvoiceRepositoryInterface
{
    public function get($id);
}
