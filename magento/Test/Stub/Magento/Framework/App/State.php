<?php

declare(strict_types=1);

namespace Magento\Framework\App;

class State
{
    public function __construct(public ?string $areaCode = null)
    {
    }

    public function getAreaCode()
    {
        if ($this->areaCode === null) {
            throw new \Magento\Framework\Exception\LocalizedException('Area code is not set');
        }
        return $this->areaCode;
    }
}
