<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use Ledger\SageSync\Block\Adminhtml\System\Config\Banner;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Model\Config;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Ledger\SageSync\Model\Source\SageStatus;
use Ledger\SageSync\Model\Status\DbStatusSink;
use Ledger\SageSync\Test\Support\ArrayConfig;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\ViewModel\SageInfo;
use Magento\Backend\Block\Template;
use Magento\Backend\Block\Template\Context;
use Magento\Framework\App\RequestInterface;
use Magento\Framework\Data\Form\Element\AbstractElement;
use PHPUnit\Framework\TestCase;

/** The view model and the two templates, rendered with hostile data: everything is escaped. */
final class AdminUiTest extends TestCase
{
    private const XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>';

    private function request(array $params): RequestInterface
    {
        $request = $this->createMock(RequestInterface::class);
        $request->method('getParam')->willReturnCallback(static fn ($key) => $params[$key] ?? null);
        return $request;
    }

    private function record(OutboxStatus $status, string $error): OutboxRecord
    {
        $clock = new FixedClock();
        return new OutboxRecord(
            eventId: 'e2a7c3f9-8b14-4d0e-9f6a-3c5b7d9e1f33',
            eventType: EventType::InvoiceCreated,
            dedupeKey: 'invoice.created:3301',
            entityType: 'invoice',
            entityId: 3301,
            websiteId: 1,
            storeId: 1,
            occurredAt: $clock->now(),
            source: [],
            payload: [],
            status: $status,
            attempts: 3,
            lastError: $error,
            id: 9,
        );
    }

    private function info(?array $statusRow, array $records, array $params = ['invoice_id' => '3301']): SageInfo
    {
        $sink = $this->createMock(DbStatusSink::class);
        $sink->method('get')->willReturn($statusRow);
        $store = $this->createMock(DbOutboxStore::class);
        $store->method('forEntity')->willReturn($records);
        return new SageInfo($this->request($params), $sink, $store);
    }

    public function testViewModel(): void
    {
        $failed = ['status' => 'failed', 'message' => 'Not delivered', 'sage_ref' => null, 'updated_at' => 'x'];
        $info = $this->info($failed, [$this->record(OutboxStatus::Dead, 'JetStream error')])->forDocument('invoice');
        self::assertSame('failed', $info['status']);
        self::assertSame('Failed', $info['label']);
        self::assertSame(['type' => 'invoice.created', 'state' => 'dead', 'attempts' => 3,
            'when' => '2025-04-02 10:14:12 UTC', 'detail' => 'JetStream error'], $info['events'][0]);

        $untracked = $this->info(null, [])->forDocument('invoice');
        self::assertSame('untracked', $untracked['status']);
        self::assertStringContainsString('not recorded', $untracked['message']);
        self::assertNull($this->info(null, [], [])->forDocument('invoice'), 'no id in the request');
        self::assertNull($this->info(null, [])->forDocument('order'));
    }

    public function testInfoBlockEscapesEverything(): void
    {
        $row = ['status' => 'failed" onmouseover="x', 'message' => self::XSS, 'sage_ref' => self::XSS,
            'updated_at' => 'x'];
        $viewModel = $this->info($row, [$this->record(OutboxStatus::Retry, self::XSS)]);
        $block = new Template(new Context(), ['view_model' => $viewModel, 'entity_type' => 'invoice']);
        $html = $block->setTemplate('Ledger_SageSync::sales/sage-info.phtml')->toHtml();
        self::assertStringContainsString('<tr class="ledger-sage-sync-info">', $html);
        self::assertStringContainsString('ledger-sage-chip--untracked', $html, 'unknown status is not echoed');
        self::assertStringNotContainsString('<script>', $html);
        self::assertStringNotContainsString('<img', $html);
        self::assertStringContainsString('&lt;script&gt;', $html);
        self::assertStringContainsString('Ledger Event invoice.created', $html);
        self::assertStringContainsString('3 failed attempts', $html);
    }

    public function testInfoBlockShowsSagesNumberAndIdAndTheHeldDetail(): void
    {
        $synced = ['status' => 'synced', 'message' => 'In Sage as SI-12', 'sage_ref' => 'SI-12',
            'sage_id' => '9f1c2e', 'updated_at' => 'x'];
        $block = new Template(new Context(), ['view_model' => $this->info($synced, []), 'entity_type' => 'invoice']);
        $html = $block->setTemplate('Ledger_SageSync::sales/sage-info.phtml')->toHtml();
        self::assertMatchesRegularExpression('~Sage Number</th>\s*<td>SI-12</td>~', $html);
        self::assertStringContainsString('9f1c2e', $html, 'the id beside it');
        $held = ['status' => 'skipped', 'message' => 'Not synced on purpose: period_locked - invoice dated'
            . ' 2025-03-31 in Magento: period locked in Sage until 2025-03-31', 'sage_ref' => null,
            'sage_id' => null, 'updated_at' => 'x'];
        $block = new Template(new Context(), ['view_model' => $this->info($held, []), 'entity_type' => 'invoice']);
        $html = $block->setTemplate('Ledger_SageSync::sales/sage-info.phtml')->toHtml();
        $title = 'title="Not synced on purpose: period_locked - invoice dated 2025-03-31';
        self::assertStringContainsString($title, $html);
        self::assertStringContainsString('period locked in Sage until 2025-03-31</div>', $html);
        self::assertStringNotContainsString('Sage Number', $html);
    }

    public function testInfoBlockRendersNothingWithoutADocument(): void
    {
        $block = new Template(new Context(), ['view_model' => $this->info(null, [], []), 'entity_type' => 'invoice']);
        self::assertSame('', trim($block->setTemplate('Ledger_SageSync::sales/sage-info.phtml')->toHtml()));
    }

    public function testConfigBannerShowsDeadLettersEscaped(): void
    {
        $settings = new ArrayConfig();
        $store = $this->createMock(DbOutboxStore::class);
        $store->method('countByStatus')->willReturn(['pending' => 2, 'retry' => 1, 'published' => 40, 'dead' => 1]);
        $store->method('unresolvedDeadLetters')->willReturn(1);
        $store->method('deadLetters')->willReturn([[
            'outbox_id' => 9, 'event_id' => 'e', 'event_type' => 'invoice.created',
            'dedupe_key' => 'invoice.created:3301',
            'attempts' => 12, 'error' => self::XSS, 'created_at' => '2025-04-03 00:00:00',
        ]]);
        $store->method('lastPublished')->willReturn('2025-04-02 10:20:00');
        $banner = new Banner(new Context(), new Config($settings, $settings), $store, $this->noRefusals());
        $html = $banner->render(new AbstractElement());
        self::assertStringContainsString('1 Ledger event(s) could not be delivered', $html);
        self::assertStringContainsString('bin/magento ledger:outbox:retry-dead', $html);
        self::assertStringContainsString('Not paired with Ledger: generate a pairing code', $html);
        self::assertStringContainsString('Outbox: 3 waiting, 40 published.', $html);
        self::assertStringNotContainsString('<script>', $html);
        self::assertStringNotContainsString('<img', $html);
        self::assertStringNotContainsString('Sage refused', $html);
    }

    private function noRefusals(): DbStatusSink
    {
        $statuses = $this->createMock(DbStatusSink::class);
        $statuses->method('refusals')->willReturn(['count' => 0, 'newest' => []]);
        return $statuses;
    }

    public function testConfigBannerNamesTheDocumentsSageRefusedAndLinksToTheFailedGrids(): void
    {
        $settings = new ArrayConfig();
        $store = $this->createMock(DbOutboxStore::class);
        $store->method('countByStatus')->willReturn(['published' => 7]);
        $statuses = $this->createMock(DbStatusSink::class);
        $statuses->method('refusals')->with(5)->willReturn([
            'count' => 3,
            'newest' => [
                [
                    'entity_type' => 'creditmemo', 'entity_id' => 12, 'increment_id' => '000000012',
                    'message' => 'Sync failed: sage_rejected - ' . self::XSS, 'updated_at' => '2025-04-03 10:00:02',
                ],
                [
                    'entity_type' => 'invoice', 'entity_id' => 40, 'increment_id' => '000000040',
                    'message' => 'Sync failed: sage_rejected - ledger account not found',
                    'updated_at' => '2025-04-03 10:00:01',
                ],
            ],
        ]);
        $html = (new Banner(new Context(), new Config($settings, $settings), $store, $statuses))
            ->render(new AbstractElement());
        $text = preg_replace('/\s+/', ' ', strip_tags($html));
        self::assertStringContainsString('Sage refused 3 document(s): their Sage Status is Failed.', $text);
        self::assertStringContainsString(
            'Credit memo 000000012 (2025-04-03 10:00:02 UTC): Sync failed: sage_rejected -',
            $text
        );
        self::assertStringContainsString(
            'Invoice 000000040 (2025-04-03 10:00:01 UTC): Sync failed: sage_rejected - ledger account not found',
            $text
        );
        self::assertLessThan(strpos($html, '000000040'), strpos($html, '000000012'), 'newest first');
        self::assertStringContainsString(
            'href="https://shop.example/admin/sales/invoice/index/key/0123abcd/?filters[sage_status]=failed"',
            $html
        );
        self::assertStringContainsString(
            'href="https://shop.example/admin/sales/creditmemo/index/key/0123abcd/?filters[sage_status]=failed"',
            $html
        );
        self::assertStringNotContainsString('<script>', $html);
        self::assertStringNotContainsString('<img', $html);
    }

    public function testBannerSurvivesAMissingTable(): void
    {
        $settings = new ArrayConfig();
        $store = $this->createMock(DbOutboxStore::class);
        $missing = new \RuntimeException("Table 'ledger_sage_outbox' doesn't exist");
        $store->method('countByStatus')->willThrowException($missing);
        $statuses = $this->createMock(DbStatusSink::class);
        $statuses->method('refusals')->willThrowException($missing);
        $html = (new Banner(new Context(), new Config($settings, $settings), $store, $statuses))
            ->render(new AbstractElement());
        self::assertStringContainsString('setup:upgrade', $html);
        self::assertStringNotContainsString('Sage refused', $html);
    }

    public function testEveryTemplateOutputIsEscaped(): void
    {
        $templates = glob(dirname(__DIR__, 3) . '/view/adminhtml/templates/*/*.phtml') ?: [];
        $templates = array_merge($templates, glob(dirname(__DIR__, 3) . '/view/adminhtml/templates/*/*/*.phtml') ?: []);
        self::assertCount(4, $templates);
        foreach ($templates as $file) {
            preg_match_all('/<\?=\s*(.*?)\?>/s', (string) file_get_contents($file), $echoes);
            self::assertNotEmpty($echoes[1]);
            foreach ($echoes[1] as $echo) {
                self::assertMatchesRegularExpression(
                    '/^\$escaper->escape(Html|HtmlAttr|Url|Js)\(/',
                    trim($echo),
                    basename($file) . ' echoes unescaped: ' . $echo
                );
            }
            self::assertDoesNotMatchRegularExpression('/\b(echo|print)\b/', (string) file_get_contents($file));
        }
    }

    public function testGridStatusOptions(): void
    {
        self::assertSame([
            ['value' => 'pending', 'label' => 'Pending'],
            ['value' => 'synced', 'label' => 'Synced'],
            ['value' => 'skipped', 'label' => 'Skipped'],
            ['value' => 'failed', 'label' => 'Failed'],
        ], (new SageStatus())->toOptionArray());
    }

    public function testGridCellTemplateUsesTextBindingsOnly(): void
    {
        $web = dirname(__DIR__, 3) . '/view/adminhtml/web';
        $html = (string) file_get_contents($web . '/template/grid/cells/sage-status.html');
        self::assertStringContainsString('text="$col.getLabel($row())"', $html);
        self::assertStringContainsString('title: $col.getTooltip($row())', $html);
        self::assertStringNotContainsString('html', str_replace('.html', '', $html), 'no html binding');
        $js = (string) file_get_contents(dirname(__DIR__, 3) . '/view/adminhtml/web/js/grid/columns/sage-status.js');
        foreach (['pending', 'synced', 'skipped', 'failed'] as $status) {
            self::assertStringContainsString("'" . $status . "'", $js);
            self::assertStringContainsString('.ledger-sage-chip--' . $status, (string) file_get_contents(
                dirname(__DIR__, 3) . '/view/adminhtml/web/css/source/_module.less'
            ));
        }
    }
}
