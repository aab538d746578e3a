<?php

declare(strict_types=1);

namespace Magento\Backend\Block\Template;

class Context
{
}
