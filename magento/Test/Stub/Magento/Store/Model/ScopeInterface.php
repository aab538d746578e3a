<?php

declare(strict_types=1);

namespace Magento\Store\Model;

interface ScopeInterface
{
    public const SCOPE_STORE = 'store';
}
