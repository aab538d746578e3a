<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use DateTimeImmutable;
use DOMDocument;
use DOMXPath;
use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Model\Http\MagentoHttpTransport;
use Ledger\SageSync\Core\Status\DocumentResolver;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Core\Status\StatusFeed;
use Ledger\SageSync\Core\Status\StatusUpdate;
use Ledger\SageSync\Cron\PullStatus;
use Ledger\SageSync\Model\Status\ConfiguredStatusFeed;
use Ledger\SageSync\Model\Status\DbDocumentResolver;
use Ledger\SageSync\Model\Status\DbStatusSink;
use Ledger\SageSync\Model\Status\FlagCursorStore;
use Ledger\SageSync\Test\Support\ArrayDocuments;
use Ledger\SageSync\Test\Support\FakeAdapter;
use Ledger\SageSync\Test\Support\Glue;
use Ledger\SageSync\Test\Support\ScriptedHttp;
use Magento\Framework\App\ResourceConnection;
use Magento\Framework\FlagManager;
use PHPUnit\Framework\TestCase;

/** The status cron as etc/di.xml wires it: gateway feed, flag-table cursor, status tables. */
final class StatusPullGlueTest extends TestCase
{
    private Glue $glue;
    private ScriptedHttp $http;
    private FlagManager $flags;

    protected function setUp(): void
    {
        $this->glue = new Glue();
        $this->glue->settings->values['ledger_sage_sync/general/merchant_id'] = 'hartley-goods';
        $this->glue->settings->values['ledger_sage_sync/https/url'] = 'https://ingest.ledger.example';
        $this->glue->settings->values['ledger_sage_sync/https/ingest_key'] = $this->glue->settings->encrypt('ik_1');
        $this->http = new ScriptedHttp();
        $this->flags = new FlagManager();
    }

    private function cron(): PullStatus
    {
        return new PullStatus(
            $this->glue->config,
            new ConfiguredStatusFeed($this->glue->config, $this->http),
            $this->glue,
            new ArrayDocuments(['invoice:1:000000123' => 3301]),
            $this->flags,
            $this->glue->logger
        );
    }

    public function testCronAppliesThePagesAndKeepsTheCursorInTheFlagTable(): void
    {
        $this->flags->flags[FlagCursorStore::FLAG] = '12';
        $this->http->answer(200, ['items' => [[
            'cursor' => 13, 'entity' => 'invoice', 'document_key' => 'invoice:1:000000123', 'state' => 'synced',
            'sage_reference' => 'SI-1045', 'service' => 'invoices', 'at' => '2026-11-27T08:00:00Z',
        ]], 'next_cursor' => 13, 'more' => false]);

        $this->cron()->execute();

        self::assertSame(['12'], $this->http->cursors());
        self::assertSame('Bearer ik_1', $this->http->requests[0][1]['Authorization'], 'the decrypted ingest key');
        self::assertSame([['invoice', 3301, 'synced', 'In Sage as SI-1045']], $this->glue->statuses);
        self::assertSame('13', $this->flags->flags[FlagCursorStore::FLAG]);
        self::assertSame([], $this->glue->logger->lines);
    }

    public function testCronLogsGatewayFailuresAndKeepsTheCursor(): void
    {
        $this->flags->flags[FlagCursorStore::FLAG] = '12';
        $this->http->answer(401, ['error' => 'unauthorized']);

        $this->cron()->execute();

        self::assertSame('12', $this->flags->flags[FlagCursorStore::FLAG]);
        self::assertSame('warning', $this->glue->logger->lines[0][0]);
        self::assertStringContainsString('status pull failed (retried next run)', $this->glue->logger->lines[0][1]);
        self::assertStringContainsString('HTTP 401', $this->glue->logger->lines[0][1]);
    }

    public function testWithoutGatewaySettingsOrMerchantNothingIsRead(): void
    {
        unset($this->glue->settings->values['ledger_sage_sync/https/ingest_key']);
        $this->cron()->execute();
        self::assertSame([], $this->http->requests);
        self::assertSame([], $this->flags->flags);

        $this->glue->settings->values['ledger_sage_sync/https/ingest_key'] = $this->glue->settings->encrypt('ik_1');
        $this->glue->settings->values['ledger_sage_sync/general/merchant_id'] = '';
        $this->cron()->execute();
        self::assertSame([], $this->http->requests);
    }

    public function testDocumentsAreFoundByStoreAndIncrementId(): void
    {
        $db = new FakeAdapter();
        $db->results = ['3301', false];
        $resolver = new DbDocumentResolver(new ResourceConnection($db));
        self::assertSame(3301, $resolver->entityId('invoice', 1, '000000123'));
        self::assertNull($resolver->entityId('creditmemo', 2, '000000045'));
        self::assertNull($resolver->entityId('customer', 0, '42'));
        $where = ' WHERE increment_id = ? AND store_id = ?';
        self::assertSame([
            ['fetchOne', 'SELECT entity_id FROM `sales_invoice`' . $where, ['000000123', 1]],
            ['fetchOne', 'SELECT entity_id FROM `sales_creditmemo`' . $where, ['000000045', 2]],
        ], $db->log);
    }

    public function testTheStatusRowKeepsTheTimeOfTheChange(): void
    {
        $db = new FakeAdapter();
        (new DbStatusSink(new ResourceConnection($db)))->update(
            'creditmemo',
            501,
            SageStatus::Skipped,
            'Not synced on purpose: zero_total',
            null,
            new DateTimeImmutable('2026-11-27T09:15:00+01:00')
        );
        [, $sql, $bind] = $db->ops('query')[0];
        self::assertStringStartsWith('INSERT INTO `ledger_sage_creditmemo_status`', $sql);
        self::assertSame([501, 'skipped', 'Not synced on purpose: zero_total', null, '2026-11-27 08:15:00'], $bind);

        $db->results = [['status' => 'synced', 'message' => null, 'sage_ref' => 'SI-1045', 'updated_at' => 'x'], false];
        $sink = new DbStatusSink(new ResourceConnection($db));
        self::assertSame('SI-1045', $sink->sageReference('invoice', 3301), 'read back for skipped payments');
        self::assertNull($sink->sageReference('invoice', 3302));
    }

    public function testFeedChangesAreMergedIntoTheRowAndAnOlderOneIsNotWritten(): void
    {
        $db = new FakeAdapter();
        $sink = new DbStatusSink(new ResourceConnection($db));
        $invoice = new StatusUpdate(
            'invoice',
            'invoice:1:000000123',
            SageStatus::Synced,
            sageReference: '000000123',
            at: new DateTimeImmutable('2026-11-27T09:15:00+01:00'),
            sageNumber: 'SI-12',
            sageId: '9f1c',
        );
        $db->results = [false];
        $sink->apply('invoice', 3301, $invoice, false);
        [, $sql, $bind] = $db->ops('query')[0];
        self::assertStringStartsWith('INSERT INTO `ledger_sage_invoice_status` (invoice_id, status, message,'
            . ' sage_ref, sage_id, feed_state, updated_at)', $sql);
        self::assertSame([3301, 'synced', 'In Sage as SI-12', 'SI-12', '9f1c'], array_slice($bind, 0, 5));
        self::assertSame('2026-11-27 08:15:00', $bind[6]);
        self::assertSame(
            ['entity_id = ?' => 3301],
            $db->ops('update')[0][2]['where'],
            'the grid row too'
        );

        // The stored state holds a newer change of the invoice: an older one writes nothing.
        $stored = $bind[5];
        $db = new FakeAdapter();
        $db->results = [$stored];
        $older = new StatusUpdate(
            'invoice',
            'invoice:1:000000123',
            SageStatus::Pending,
            code: 'sage.http_503',
            at: new DateTimeImmutable('2026-11-27T08:14:00Z'),
        );
        (new DbStatusSink(new ResourceConnection($db)))->apply('invoice', 3301, $older, false);
        self::assertSame([], $db->ops('query'));
        // A payment's change, even an older one, is its own part: written, the invoice's number kept.
        $db->results = [$stored];
        $receipt = new StatusUpdate(
            'payment',
            'invoice:1:000000123',
            SageStatus::Synced,
            at: new DateTimeImmutable('2026-11-27T08:14:00Z'),
            sageNumber: 'Receipt 123',
        );
        (new DbStatusSink(new ResourceConnection($db)))->apply('invoice', 3301, $receipt, true);
        [, , $bind] = $db->ops('query')[0];
        self::assertSame(
            [3301, 'synced', 'In Sage as SI-12; payment posted as Receipt 123', 'SI-12', '9f1c'],
            array_slice($bind, 0, 5)
        );
    }

    public function testFlagCursorAndDiWiring(): void
    {
        $flags = new FlagManager();
        $store = new FlagCursorStore($flags);
        self::assertNull($store->load());
        $store->save('77');
        self::assertSame('77', $store->load());
        $flags->flags[FlagCursorStore::FLAG] = 78;
        self::assertSame('78', $store->load());
        self::assertSame(PullStatus::CURSOR_FLAG, FlagCursorStore::FLAG, 'the flag of earlier releases');

        $di = new DOMXPath(self::dom(dirname(__DIR__, 3) . '/etc/di.xml'));
        $preferences = [
            StatusFeed::class => ConfiguredStatusFeed::class,
            DocumentResolver::class => DbDocumentResolver::class,
            HttpReader::class => MagentoHttpTransport::class,
        ];
        foreach ($preferences as $for => $type) {
            self::assertSame($type, $di->evaluate('string(//preference[@for="' . $for . '"]/@type)'));
        }
        $feed = $di->evaluate('string(//type[@name="' . PullStatus::class . '"]//argument[@name="feed"])');
        self::assertSame(ConfiguredStatusFeed::class, $feed);
    }

    private static function dom(string $path): DOMDocument
    {
        $dom = new DOMDocument();
        $dom->load($path);
        return $dom;
    }
}
