<?php

declare(strict_types=1);

namespace Ledger\SageSync\Controller\Adminhtml\Pairing;

use Ledger\SageSync\Core\Pairing\PairingState;

/** "Check pairing", also called by the page every few seconds while a code is shown. */
class Check extends AbstractPairing
{
    protected function run(): PairingState
    {
        return $this->pairing->check();
    }
}
