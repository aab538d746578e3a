<?php

declare(strict_types=1);

namespace Magento\Backend\App\Action;

use Magento\Framework\App\RequestInterface;

/** Carries the request; the real context also carries authorization, session, URL builder … */
class Context
{
    public function __construct(private ?RequestInterface $request = null)
    {
    }

    public function getRequest()
    {
        return $this->request;
    }
}
