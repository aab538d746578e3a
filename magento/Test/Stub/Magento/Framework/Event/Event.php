<?php

declare(strict_types=1);

namespace Magento\Framework\Event;

use Magento\Framework\DataObject;

class Event extends DataObject
{
}
