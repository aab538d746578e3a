<?php

declare(strict_types=1);

namespace Magento\Framework\Exception;

class LocalizedException extends \Exception
{
    public function __construct($phrase = '', ?\Exception $cause = null, $code = 0)
    {
        parent::__construct((string) $phrase, (int) $code, $cause);
    }
}
