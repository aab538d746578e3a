<?php

declare(strict_types=1);

namespace Magento\Framework\App\Config;

interface ReinitableConfigInterface extends ScopeConfigInterface
{
    public function reinit();
}
