<?php

declare(strict_types=1);

namespace Magento\Framework\Controller\Result;

class Json
{
    /** Test-only view of what setData() received (the real result renders it into the response). */
    public mixed $data = null;

    public function setData($data, $cycleCheck = false, $options = [])
    {
        $this->data = $data;
        return $this;
    }
}
