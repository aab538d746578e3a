<?php

declare(strict_types=1);

namespace Magento\Framework;

class FlagManager
{
    public array $flags = [];

    public function getFlagData($flagCode)
    {
        return $this->flags[$flagCode] ?? null;
    }

    public function saveFlag($flagCode, $value)
    {
        $this->flags[$flagCode] = $value;
        return true;
    }
}
