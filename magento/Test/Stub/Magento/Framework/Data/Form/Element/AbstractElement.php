<?php

declare(strict_types=1);

namespace Magento\Framework\Data\Form\Element;

use Magento\Framework\DataObject;

class AbstractElement extends DataObject
{
}
