<?php

declare(strict_types=1);

namespace Magento\Framework\View\Element\Block;

interface ArgumentInterface
{
}
