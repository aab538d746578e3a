<?php

declare(strict_types=1);

namespace Magento\Framework\App\Action;

interface HttpPostActionInterface
{
    public function execute();
}
