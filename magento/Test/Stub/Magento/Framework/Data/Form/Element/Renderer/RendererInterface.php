<?php

declare(strict_types=1);

namespace Magento\Framework\Data\Form\Element\Renderer;

use Magento\Framework\Data\Form\Element\AbstractElement;

interface RendererInterface
{
    public function render(AbstractElement $element);
}
