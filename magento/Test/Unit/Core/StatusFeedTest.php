<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use DateTimeImmutable;
use InvalidArgumentException;
use Ledger\SageSync\Core\Publish\TransportException;
use Ledger\SageSync\Core\Status\HttpsStatusFeed;
use Ledger\SageSync\Core\Status\InMemoryCursorStore;
use Ledger\SageSync\Core\Status\NullStatusFeed;
use Ledger\SageSync\Core\Status\SageStatus;
use Ledger\SageSync\Core\Status\StatusPull;
use Ledger\SageSync\Core\Status\StatusSink;
use Ledger\SageSync\Core\Status\StatusUpdate;
use Ledger\SageSync\Test\Support\ArrayDocuments;
use Ledger\SageSync\Test\Support\Glue;
use Ledger\SageSync\Test\Support\ScriptedHttp;
use PHPUnit\Framework\TestCase;
use RuntimeException;

final class StatusFeedTest extends TestCase
{
    private ScriptedHttp $http;
    private Glue $sink;
    private ArrayDocuments $documents;

    protected function setUp(): void
    {
        $this->http = new ScriptedHttp();
        $this->sink = new Glue();
        $this->documents = new ArrayDocuments([
            'invoice:1:000000123' => 3301,
            'invoice:1:000000124' => 3302,
            'invoice:2:000000124' => 4402,
            'creditmemo:1:000000045' => 501,
        ]);
    }

    private function pull(InMemoryCursorStore $cursors): StatusPull
    {
        $feed = new HttpsStatusFeed('https://ingest.ledger.example/', 'ik_live_abc', $this->http);
        return new StatusPull($feed, $this->sink, $this->documents, $cursors);
    }

    /** @return array<string, mixed> */
    private static function item(int $cursor, string $key, string $state, array $more = []): array
    {
        return $more + [
            'cursor' => $cursor,
            'entity' => explode(':', $key)[0],
            'document_key' => $key,
            'state' => $state,
            'service' => 'invoices',
            'at' => '2026-11-27T08:10:0' . ($cursor % 10) . 'Z',
        ];
    }

    /** @param list<array<string, mixed>> $items */
    private static function page(array $items, int $next, bool $more): array
    {
        return ['items' => $items, 'next_cursor' => $next, 'more' => $more];
    }

    public function testWalksThePagesUntilNoMoreAndSavesTheCursorAfterEach(): void
    {
        $this->http
            ->answer(200, self::page([self::item(3, 'invoice:1:000000123', 'pending')], 3, true))
            ->answer(200, self::page([self::item(7, 'invoice:1:000000123', 'synced', [
                'sage_reference' => 'SI-1045',
            ])], 7, true))
            ->answer(200, self::page([self::item(9, 'creditmemo:1:000000045', 'synced')], 9, false));
        $cursors = new InMemoryCursorStore();

        $result = $this->pull($cursors)->run(2);

        self::assertSame(['0', '3', '7'], $this->http->cursors());
        self::assertSame(['3', '7', '9'], $cursors->saved, 'saved after every page');
        self::assertSame(['pages' => 3, 'applied' => 3, 'ignored' => 0, 'cursor' => '9', 'more' => false], $result);
        [$url, $headers] = $this->http->requests[0];
        self::assertSame('https://ingest.ledger.example/v1/status?cursor=0&limit=2', $url);
        self::assertSame('Bearer ik_live_abc', $headers['Authorization']);
        self::assertSame(['invoice', 3301, 'pending'], array_slice($this->sink->statuses[0], 0, 3));
        self::assertSame(['invoice', 3301, 'synced'], array_slice($this->sink->statuses[1], 0, 3));
        self::assertSame(['creditmemo', 501, 'synced'], array_slice($this->sink->statuses[2], 0, 3));
    }

    public function testResumesFromTheStoredCursorAndKeepsItWhenNothingIsNew(): void
    {
        $this->http->answer(200, self::page([], 42, false));
        $cursors = new InMemoryCursorStore('42');

        $result = $this->pull($cursors)->run();

        self::assertSame(['42'], $this->http->cursors());
        self::assertSame([], $cursors->saved, 'unchanged cursor is not rewritten');
        self::assertSame('42', $result['cursor']);
        self::assertSame('42', $cursors->load());
    }

    public function testStopsAtThePageLimitAndContinuesNextRun(): void
    {
        $this->http
            ->answer(200, self::page([self::item(1, 'invoice:1:000000123', 'pending')], 1, true))
            ->answer(200, self::page([self::item(2, 'invoice:1:000000123', 'synced')], 2, true))
            ->answer(200, self::page([], 2, false));
        $cursors = new InMemoryCursorStore();

        $first = $this->pull($cursors)->run(1, 2);
        self::assertSame(2, $first['pages']);
        self::assertTrue($first['more']);
        $this->pull($cursors)->run(1, 2);
        self::assertSame(['0', '1', '2'], $this->http->cursors());
    }

    public function testMapsEveryStateOntoTheChipWithReferenceReasonCodeAndTime(): void
    {
        $this->http->answer(200, self::page([
            self::item(11, 'invoice:1:000000123', 'synced', ['sage_reference' => 'SI-1045', 'sage_id' => 'f3a9']),
            self::item(12, 'invoice:1:000000124', 'skipped', ['skip_reason' => 'zero_total']),
            self::item(13, 'invoice:2:000000124', 'failed', [
                'error_code' => 'sage_validation',
                'message' => 'Tax rate T9 is unknown',
            ]),
            self::item(14, 'creditmemo:1:000000045', 'pending', ['error_code' => 'sage_throttled']),
            self::item(15, 'creditmemo:1:000000045', 'synced', ['sage_id' => 'c77e']),
        ], 15, false));

        $this->pull(new InMemoryCursorStore())->run();

        self::assertSame([
            ['invoice', 3301, 'synced', 'In Sage as SI-1045'],
            ['invoice', 3302, 'skipped', 'Not synced on purpose: zero_total'],
            ['invoice', 4402, 'failed', 'Sync failed: sage_validation - Tax rate T9 is unknown'],
            ['creditmemo', 501, 'pending', 'Received by Ledger, not in Sage yet (sage_throttled)'],
            ['creditmemo', 501, 'synced', 'In Sage as c77e'],
        ], $this->sink->statuses);
        self::assertSame([
            ['SI-1045', '2026-11-27T08:10:01+00:00'],
            [null, '2026-11-27T08:10:02+00:00'],
            [null, '2026-11-27T08:10:03+00:00'],
            [null, '2026-11-27T08:10:04+00:00'],
            ['c77e', '2026-11-27T08:10:05+00:00'],
        ], $this->sink->details, 'reference only when synced (else the Sage id); the time of the change');
    }

    public function testIgnoresKindsItDoesNotShowAndUnknownDocumentsButMovesOn(): void
    {
        $this->http->answer(200, self::page([
            self::item(21, 'customer:42', 'synced', ['sage_reference' => 'HARTLEY']),
            self::item(22, 'product:7', 'skipped', ['skip_reason' => 'not_stocked']),
            self::item(23, 'invoice:1:000009999', 'synced'),
            self::item(24, 'invoice:9:000000123', 'synced'),
            self::item(25, 'invoice:1:000000123', 'exploded'),
            ['cursor' => 26, 'state' => 'synced'],
            'garbage',
        ], 26, false));
        $cursors = new InMemoryCursorStore('19');

        $result = $this->pull($cursors)->run();

        self::assertSame([], $this->sink->statuses);
        self::assertSame(4, $result['ignored'], 'unreadable items are not counted, just passed over');
        self::assertSame(['26'], $cursors->saved);
    }

    public function testAPaymentLandsOnItsInvoiceAndASkippedOneKeepsTheInvoiceSynced(): void
    {
        $payment = ['entity' => 'payment'];
        $this->http->answer(200, self::page([
            self::item(51, 'invoice:1:000000123', 'pending', $payment + ['error_code' => 'invoice_not_synced']),
            self::item(52, 'invoice:1:000000123', 'synced', $payment + ['sage_reference' => 'CR-77']),
            self::item(53, 'invoice:1:000000124', 'failed', $payment + ['error_code' => 'invoice_not_synced']),
            self::item(54, 'invoice:2:000000124', 'synced', ['sage_number' => 'SI-2001', 'sage_id' => 'f4']),
            self::item(55, 'invoice:2:000000124', 'skipped', $payment + ['skip_reason' => 'net_terms']),
        ], 55, false));
        $cursors = new InMemoryCursorStore();
        $result = $this->pull($cursors)->run();

        self::assertSame([
            ['invoice', 3301, 'pending', 'Payment: Received by Ledger, not in Sage yet (invoice_not_synced)'],
            ['invoice', 3301, 'synced', 'In Sage; payment posted as CR-77'],
            ['invoice', 3302, 'failed', 'Payment: Sync failed: invoice_not_synced'],
            ['invoice', 4402, 'synced', 'In Sage as SI-2001'],
            ['invoice', 4402, 'synced', 'In Sage as SI-2001; payment not synced on purpose: net_terms'],
        ], $this->sink->statuses);
        $numbers = array_column($this->sink->details, 0);
        self::assertSame([null, null, null, 'SI-2001', 'SI-2001'], $numbers, 'the invoice keeps its own number');
        self::assertSame(0, $result['ignored']);
        self::assertSame('55', $cursors->load());
    }

    public function testUpdatesInAnyOrderAreAllAppliedAndAnOlderOneNeverHidesANewerOne(): void
    {
        $payment = ['entity' => 'payment'];
        $at = static fn (string $t): array => ['at' => '2026-11-27T08:' . $t . 'Z'];
        $this->http->answer(200, self::page([
            // The payment's receipt is reported before its invoice: kept, not dropped.
            self::item(61, 'invoice:1:000000123', 'synced', $payment + $at('10:05') + ['sage_number' => 'Receipt 77']),
            // A payment skipped on purpose before its invoice is reported: kept too.
            self::item(62, 'invoice:1:000000124', 'skipped', $payment + $at('10:06') + [
                'skip_reason' => 'net_terms', 'detail' => 'method checkmo is paid outside Magento',
            ]),
            // The invoices arrive later in the feed, with earlier times: each combines with its payment.
            self::item(63, 'invoice:1:000000123', 'synced', $at('10:01') + ['sage_number' => 'SI-1', 'sage_id' => 'a']),
            self::item(64, 'invoice:1:000000124', 'synced', $at('10:02') + ['sage_number' => 'SI-2', 'sage_id' => 'b']),
            // A stale pending of the invoice (an earlier attempt) after its synced: ignored.
            self::item(65, 'invoice:1:000000123', 'pending', $at('10:00') + ['error_code' => 'sage.http_503']),
        ], 65, false));

        $result = $this->pull(new InMemoryCursorStore())->run();

        self::assertSame([
            ['invoice', 3301, 'synced', 'In Sage; payment posted as Receipt 77'],
            ['invoice', 3302, 'pending', 'Invoice not reported yet; payment not synced on purpose: net_terms'
                . ' - method checkmo is paid outside Magento'],
            ['invoice', 3301, 'synced', 'In Sage as SI-1; payment posted as Receipt 77'],
            ['invoice', 3302, 'synced', 'In Sage as SI-2; payment not synced on purpose: net_terms'
                . ' - method checkmo is paid outside Magento'],
        ], $this->sink->statuses);
        self::assertSame([null, null, 'SI-1', 'SI-2'], array_column($this->sink->details, 0), 'the number, not the id');
        self::assertSame('2026-11-27T08:10:05+00:00', $this->sink->details[2][1], 'the latest change of either part');
        self::assertSame(5, $result['applied'], 'every update was considered; the stale one changed nothing');
    }

    public function testHeldAndFailedDocumentsCarryTheirDetailBesideTheCode(): void
    {
        $this->http->answer(200, self::page([
            self::item(71, 'invoice:1:000000123', 'skipped', [
                'skip_reason' => 'unmapped_tax_rate',
                'detail' => 'line 2 (SKU MUG-1): Magento rate 17.5% has no Sage tax rate in the tax map',
            ]),
            self::item(72, 'creditmemo:1:000000045', 'skipped', [
                'skip_reason' => 'period_locked',
                'detail' => 'credit note dated 2025-03-20 in Magento: period locked in Sage until 2025-03-31',
            ]),
        ], 72, false));

        $this->pull(new InMemoryCursorStore())->run();

        self::assertSame([
            ['invoice', 3301, 'skipped', 'Not synced on purpose: unmapped_tax_rate - line 2 (SKU MUG-1): '
                . 'Magento rate 17.5% has no Sage tax rate in the tax map'],
            ['creditmemo', 501, 'skipped', 'Not synced on purpose: period_locked - credit note dated 2025-03-20 '
                . 'in Magento: period locked in Sage until 2025-03-31'],
        ], $this->sink->statuses);
    }

    public function testASyncedDocumentShowsSagesNumberBeforeItsReferenceAndId(): void
    {
        $synced = static fn (array $fields): StatusUpdate => new StatusUpdate(
            'invoice',
            'invoice:1:000000123',
            SageStatus::Synced,
            sageReference: $fields[0],
            sageNumber: $fields[1],
            sageId: $fields[2],
        );
        self::assertSame('In Sage as SI-12', $synced(['000000123', 'SI-12', 'f3'])->describe());
        self::assertSame('In Sage as 000000123', $synced(['000000123', null, 'f3'])->describe());
        self::assertSame('In Sage as f3', $synced([null, null, 'f3'])->describe());
        self::assertSame('In Sage', $synced([null, null, null])->describe());
    }

    public function testASyncedCreditMemoSaysHowItWasSettled(): void
    {
        $creditmemo = static fn (?string $detail): StatusUpdate => new StatusUpdate(
            'creditmemo',
            'creditmemo:1:000000045',
            SageStatus::Synced,
            message: $detail,
            detail: $detail,
            sageNumber: 'SCN-3',
        );
        self::assertSame('In Sage as SCN-3 - refunded 24.00 GBP', $creditmemo('refunded 24.00 GBP')->describe());
        self::assertSame(
            'In Sage as SCN-3 - allocated 30.00 GBP to the invoice; 15.00 GBP left on account',
            $creditmemo('allocated 30.00 GBP to the invoice; 15.00 GBP left on account')->describe()
        );
        self::assertSame('In Sage as SCN-3', $creditmemo(null)->describe());
        // A synced document's message alone (no detail) is not shown.
        $invoice = new StatusUpdate('invoice', 'invoice:1:1', SageStatus::Synced, message: 'x', sageNumber: 'SI-1');
        self::assertSame('In Sage as SI-1', $invoice->describe());
    }

    /** @return array<string, array{callable(ScriptedHttp): void, string}> */
    public static function failures(): array
    {
        return [
            '401 wrong key' => [
                static fn (ScriptedHttp $h) => $h->answer(401, ['error' => 'unauthorized', 'message' => 'no']),
                'HTTP 401 unauthorized: no (check the ingest key)',
            ],
            '503 stream down' => [
                static fn (ScriptedHttp $h) => $h->answer(503, ['error' => 'status_unavailable']),
                'HTTP 503 status_unavailable',
            ],
            '502 from a proxy' => [
                static fn (ScriptedHttp $h) => $h->answer(502, '<html>Bad gateway</html>'),
                'HTTP 502',
            ],
            'timeout' => [static fn (ScriptedHttp $h) => $h->timeout(), 'timed out'],
            'not a page' => [static fn (ScriptedHttp $h) => $h->answer(200, '{"items":"x"}'), 'not a status page'],
        ];
    }

    /** @dataProvider failures */
    public function testFailuresKeepTheCursorAndTheNextRunReadsThePageAgain(callable $script, string $message): void
    {
        $this->http->answer(200, self::page([self::item(31, 'invoice:1:000000123', 'pending')], 31, true));
        $script($this->http);
        $cursors = new InMemoryCursorStore('30');

        try {
            $this->pull($cursors)->run();
            self::fail('expected a TransportException');
        } catch (TransportException $e) {
            self::assertStringContainsString($message, $e->getMessage());
        }
        self::assertSame(['31'], $cursors->saved, 'the page written before the failure counts');
        self::assertCount(1, $this->sink->statuses);

        $this->http->answer(200, self::page([self::item(32, 'invoice:1:000000123', 'synced')], 32, false));
        $this->pull($cursors)->run();
        self::assertSame(['30', '31', '31'], $this->http->cursors(), 'the failed page is asked for again');
        self::assertSame('32', $cursors->load());
    }

    public function testASinkFailureDoesNotMoveTheCursor(): void
    {
        $this->http->answer(200, self::page([self::item(41, 'invoice:1:000000123', 'synced')], 41, false));
        $cursors = new InMemoryCursorStore('40');
        $failing = new StatusPull(
            new HttpsStatusFeed('https://ingest.ledger.example', 'ik_live_abc', $this->http),
            new class implements StatusSink {
                public function update(
                    string $entityType,
                    int $entityId,
                    SageStatus $status,
                    ?string $message,
                    ?string $sageReference = null,
                    ?DateTimeImmutable $at = null
                ): void {
                    throw new RuntimeException('deadlock');
                }

                public function apply(string $entityType, int $entityId, StatusUpdate $update, bool $payment): void
                {
                    throw new RuntimeException('deadlock');
                }
            },
            $this->documents,
            $cursors
        );
        try {
            $failing->run();
            self::fail('expected the sink failure');
        } catch (RuntimeException $e) {
            self::assertSame('deadlock', $e->getMessage());
        }
        self::assertSame([], $cursors->saved);
    }

    public function testRefusesPlainHttpAndAnEmptyKey(): void
    {
        try {
            new HttpsStatusFeed('http://ingest.ledger.example', 'ik', $this->http);
            self::fail('plain http accepted');
        } catch (InvalidArgumentException $e) {
            self::assertStringContainsString('must be https://', $e->getMessage());
        }
        $this->expectException(InvalidArgumentException::class);
        new HttpsStatusFeed('https://ingest.ledger.example', '', $this->http);
    }

    public function testAForeignCursorStartsFromTheBeginningAndTheNullFeedReadsNothing(): void
    {
        $this->http->answer(200, self::page([], 0, false));
        (new HttpsStatusFeed('http://127.0.0.1:8080', 'ik', $this->http))->fetch('abc', 5000);
        self::assertSame('http://127.0.0.1:8080/v1/status?cursor=0&limit=1000', $this->http->requests[0][0]);
        self::assertSame(
            ['updates' => [], 'cursor' => '5', 'more' => false],
            (new NullStatusFeed())->fetch('5', 10)
        );
    }
}
