<?php

declare(strict_types=1);

namespace Magento\Framework\Event;

use Magento\Framework\DataObject;

class Observer extends DataObject
{
    public function getEvent()
    {
        return $this->getData('event');
    }
}
