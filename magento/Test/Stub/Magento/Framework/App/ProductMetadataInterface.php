<?php

declare(strict_types=1);

namespace Magento\Framework\App;

interface ProductMetadataInterface
{
    public function getVersion();

    public function getEdition();

    public function getName();
}
