<?php

declare(strict_types=1);

namespace Ledger\SageSync\Controller\Adminhtml\Pairing;

use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Model\Pairing\PairingService;
use Magento\Backend\App\Action;
use Magento\Backend\App\Action\Context;
use Magento\Framework\App\Action\HttpPostActionInterface;
use Magento\Framework\Controller\Result\JsonFactory;
use Throwable;

/**
 * The pairing buttons of the configuration page. POST only, so Magento checks the admin form key
 * (CSRF) before execute(), and the ACL resource Ledger_SageSync::pairing. Answers JSON without
 * secrets; the page only ever shows it as text.
 */
abstract class AbstractPairing extends Action implements HttpPostActionInterface
{
    public const ADMIN_RESOURCE = 'Ledger_SageSync::pairing';

    public function __construct(
        Context $context,
        protected PairingService $pairing,
        private JsonFactory $json,
    ) {
        parent::__construct($context);
    }

    /** The button's work. */
    abstract protected function run(): PairingState;

    /** Runs the work and answers {ok, error, state, code, expires_at, merchant_id, key_id, message, warning}. */
    public function execute()
    {
        try {
            $answer = ['ok' => true, 'error' => null] + $this->run()->toArray();
        } catch (Throwable $e) {
            $answer = ['ok' => false, 'error' => $e->getMessage()] + $this->pairing->state()->toArray();
        }
        return $this->json->create()->setData($answer);
    }
}
