<?php

declare(strict_types=1);

namespace Magento\Framework\App;

class Area
{
    public const AREA_GLOBAL = 'global';
    public const AREA_FRONTEND = 'frontend';
    public const AREA_ADMINHTML = 'adminhtml';
    public const AREA_CRONTAB = 'crontab';
    public const AREA_WEBAPI_REST = 'webapi_rest';
    public const AREA_GRAPHQL = 'graphql';
}
