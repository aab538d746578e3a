<?php

declare(strict_types=1);

namespace Ledger\SageSync\Controller\Adminhtml\Pairing;

use Ledger\SageSync\Core\Pairing\PairingState;

/** "Generate pairing code": asks the gateway for a code (POST ledger_sage_sync/pairing/start). */
class Start extends AbstractPairing
{
    protected function run(): PairingState
    {
        return $this->pairing->start();
    }
}
