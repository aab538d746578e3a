<?php

declare(strict_types=1);

namespace Magento\Framework\Console;

class Cli
{
    public const RETURN_SUCCESS = 0;
    public const RETURN_FAILURE = 1;
}
