<?php

declare(strict_types=1);

namespace Ledger\SageSync\Controller\Adminhtml\Pairing;

use Ledger\SageSync\Core\Pairing\PairingState;

/** "Disconnect": revokes the store's key at the gateway and forgets it (force=1 when unreachable). */
class Disconnect extends AbstractPairing
{
    protected function run(): PairingState
    {
        return $this->pairing->disconnect((string) $this->getRequest()?->getParam('force') === '1');
    }
}
