<?php

declare(strict_types=1);

namespace Magento\Framework\App\Config;

use Magento\Framework\Model\AbstractModel;

class Value extends AbstractModel
{
    public function beforeSave()
    {
        return $this;
    }
}
