<?php

declare(strict_types=1);

namespace Ledger\SageSync\Block\Adminhtml\System\Config;

use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Pairing\PairingService;
use Magento\Backend\Block\Template;
use Magento\Backend\Block\Template\Context;
use Magento\Framework\Data\Form\Element\AbstractElement;
use Magento\Framework\Data\Form\Element\Renderer\RendererInterface;
use Throwable;

/**
 * The "Pairing" panel of Stores > Configuration > Ledger > Sage Sync: the state (not paired, code
 * waiting, paired as …) and the buttons, which post to the ledger_sage_sync/pairing/* controllers
 * with the admin form key.
 */
class Pairing extends Template implements RendererInterface
{
    public const TEMPLATE = 'Ledger_SageSync::system/config/pairing.phtml';

    public function __construct(
        Context $context,
        private PairingService $pairing,
        private Config $config,
        array $data = []
    ) {
        parent::__construct($context, $data);
        $this->setTemplate(self::TEMPLATE);
    }

    /** Renders the panel in place of the field row. */
    public function render(AbstractElement $element)
    {
        return $this->toHtml();
    }

    /** The stored state; a store that cannot be read shows as not paired with the reason. */
    public function getState(): PairingState
    {
        try {
            return $this->pairing->state();
        } catch (Throwable $e) {
            return new PairingState(PairingState::NOT_PAIRED, null, null, 'The pairing cannot be read: '
                . $e->getMessage());
        }
    }

    /** True when hand-typed settings publish in place of a pairing (advanced override). */
    public function isManual(): bool
    {
        return !$this->config->isPaired() && $this->config->merchantId() !== '';
    }

    /** The gateway pairing codes are requested from. */
    public function getGatewayUrl(): string
    {
        return $this->config->pairingGatewayUrl();
    }

    /** @return array<string, mixed> the options of Ledger_SageSync/js/pairing (no secrets) */
    public function getWidgetConfig(): array
    {
        $state = $this->getState();
        return [
            'startUrl' => $this->getUrl('ledger_sage_sync/pairing/start'),
            'checkUrl' => $this->getUrl('ledger_sage_sync/pairing/check'),
            'disconnectUrl' => $this->getUrl('ledger_sage_sync/pairing/disconnect'),
            'formKey' => $this->getFormKey(),
            'state' => $state->state,
            'pollSeconds' => max(3, $state->pending?->pollInterval ?? 5),
        ];
    }
}
