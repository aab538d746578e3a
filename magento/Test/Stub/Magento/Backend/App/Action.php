<?php

declare(strict_types=1);

namespace Magento\Backend\App;

use Magento\Backend\App\Action\Context;

/**
 * Admin controller base. The real one checks ADMIN_RESOURCE and the URL secret key (and, for
 * HttpPostActionInterface, the form key) before execute(); the stand-in only exposes the request.
 */
abstract class Action
{
    public const ADMIN_RESOURCE = 'Magento_Backend::admin';

    private $request;

    public function __construct(Context $context)
    {
        $this->request = $context->getRequest();
    }

    public function getRequest()
    {
        return $this->request;
    }

    abstract public function execute();
}
