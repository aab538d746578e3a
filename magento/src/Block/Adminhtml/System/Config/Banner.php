<?php

declare(strict_types=1);

namespace Ledger\SageSync\Block\Adminhtml\System\Config;

use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Ledger\SageSync\Model\Status\DbStatusSink;
use Magento\Backend\Block\Template;
use Magento\Backend\Block\Template\Context;
use Magento\Framework\Data\Form\Element\AbstractElement;
use Magento\Framework\Data\Form\Element\Renderer\RendererInterface;
use Throwable;

/**
 * The banner at the top of Stores > Configuration > Ledger > Sage Sync: what is missing in the
 * configuration, the outbox at a glance, dead letters that need an operator, and the documents
 * Sage refused (status *Failed* from Ledger's status feed) with a link to each grid filtered by
 * that status.
 */
class Banner extends Template implements RendererInterface
{
    public const TEMPLATE = 'Ledger_SageSync::system/config/banner.phtml';

    public function __construct(
        Context $context,
        private Config $config,
        private DbOutboxStore $store,
        private DbStatusSink $statuses,
        array $data = []
    ) {
        parent::__construct($context, $data);
        $this->setTemplate(self::TEMPLATE);
    }

    public function render(AbstractElement $element)
    {
        return $this->toHtml();
    }

    /**
     * @return array{problems: list<string>, counts: array<string, int>, dead: int, last_published: ?string,
     *     oldest_open: ?string, error: ?string}
     */
    public function getSummary(): array
    {
        $summary = [
            'problems' => $this->config->problems(),
            'counts' => [],
            'dead' => 0,
            'last_published' => null,
            'oldest_open' => null,
            'error' => null,
        ];
        try {
            $summary['counts'] = $this->store->countByStatus();
            $summary['dead'] = $this->store->unresolvedDeadLetters();
            $summary['last_published'] = $this->store->lastPublished();
            $summary['oldest_open'] = $this->store->oldestOpen();
        } catch (Throwable $e) {
            $summary['error'] = 'The outbox cannot be read (was bin/magento setup:upgrade run?): ' . $e->getMessage();
        }
        return $summary;
    }

    /** @return list<array<string, mixed>> */
    public function getDeadLetters(): array
    {
        try {
            return $this->store->deadLetters(5);
        } catch (Throwable) {
            return [];
        }
    }

    /**
     * Invoices and credit memos marked *Failed*: their count and the newest few with reasons
     * (see {@see DbStatusSink::refusals()}); none when the status tables cannot be read.
     *
     * @return array{count: int, newest: list<array{entity_type: string, entity_id: int,
     *     increment_id: string, message: string, updated_at: string}>}
     */
    public function getRefusals(): array
    {
        try {
            return $this->statuses->refusals(5);
        } catch (Throwable) {
            return ['count' => 0, 'newest' => []];
        }
    }

    /**
     * The admin grid of `$entityType` (invoice, creditmemo) showing only *Failed* rows: the
     * grid applies `filters[sage_status]=failed` from the URL (see the module's
     * sales_invoice_index / sales_creditmemo_index layouts).
     */
    public function getFailedGridUrl(string $entityType): string
    {
        $route = $entityType === 'creditmemo' ? 'sales/creditmemo/index' : 'sales/invoice/index';
        return $this->getUrl($route) . '?filters[sage_status]=failed';
    }
}
