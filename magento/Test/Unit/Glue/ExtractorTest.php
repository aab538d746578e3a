<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Model\ModuleSource;
use Ledger\SageSync\Model\NewEntityRegistry;
use Ledger\SageSync\Model\Outbox\EntityRebuilder;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\Models;
use Ledger\SageSync\Test\Support\TaxData;
use Magento\Catalog\Api\ProductRepositoryInterface;
use Magento\Customer\Model\CustomerFactory;
use Magento\Framework\App\ProductMetadataInterface;
use Magento\Framework\DataObject;
use Magento\Framework\Exception\NoSuchEntityException;
use Magento\Sales\Api\CreditmemoRepositoryInterface;
use Magento\Sales\Api\InvoiceRepositoryInterface;
use PHPUnit\Framework\TestCase;

final class ExtractorTest extends TestCase
{
    public function testModelsBecomeTheSerializersArrays(): void
    {
        $extractor = TaxData::forFixtures()->extractor();
        $order = Models::order(Documents::ukCardOrder());
        $data = $extractor->order($order);
        self::assertArrayNotHasKey('extension_attributes', $data, 'objects are not copied');
        self::assertSame([false, false, true], array_column($data['items'], 'is_dummy'), 'from Item::isDummy()');
        self::assertSame('braintree', $data['payment']['method']);
        self::assertSame('shipping', $data['shipping_address']['address_type']);

        $virtual = $extractor->order(Models::order(Documents::euroGuestOrder()));
        self::assertNull($virtual['shipping_address']);

        $invoice = $extractor->invoice(Models::invoice(Documents::ukCardInvoice(), $order));
        self::assertArrayNotHasKey('order', $invoice);
        self::assertCount(3, $invoice['items']);
        // What the extractor produced is exactly what the fixtures (and the contract test) use.
        $serializer = new SnapshotSerializer();
        $now = new \DateTimeImmutable('2025-04-02T10:14:12Z');
        self::assertSame(
            $serializer->invoiceCreated(Documents::ukCardInvoice(), Documents::ukCardOrder(), $now),
            $serializer->invoiceCreated($invoice, $data, $now)
        );
    }

    public function testTheOrdersInvoicesGoWithTheOrderSoAnOfflineCreditMemoCanBeLinked(): void
    {
        $extractor = TaxData::forFixtures()->extractor();
        $order = Models::order(Documents::bundleOrder());
        $data = $extractor->order($order);
        self::assertSame(
            [['entity_id' => '3420', 'increment_id' => '000003420', 'created_at' => '2025-04-07 08:05:00',
                'grand_total' => '74.9500', 'base_grand_total' => '74.9500', 'state' => '2']],
            $data['invoices']
        );
        // Serialized as the contract's order_context.invoices: ids as integers, money as strings.
        $event = (new SnapshotSerializer())->creditmemoCreated(
            Documents::offlineCreditmemo(),
            $data,
            new \DateTimeImmutable('2025-04-20T09:00:00Z')
        );
        self::assertSame(
            [['entity_id' => 3420, 'increment_id' => '000003420', 'created_at' => '2025-04-07 08:05:00',
                'grand_total' => '74.95', 'base_grand_total' => '74.95', 'state' => 2]],
            $event['order']['invoices']
        );
        // An order without invoices sends no key (older contract readers see nothing new).
        self::assertArrayNotHasKey('invoices', $extractor->order(Models::order(Documents::ukCardOrder())));
    }

    public function testTaxClassesAreReadInTheOrdersStoreAndAConfigurableLineTakesItsChildsClass(): void
    {
        $tax = new TaxData();
        // The tote's product was deleted; the scarf's parent is Taxable Goods but the customer
        // chose a Zero Rated child, which is the class Magento taxed the scarf line with.
        $tax->products->raw = [402 => ['tax_class_id' => '2'], 405 => ['tax_class_id' => '5']];
        $data = $tax->extractor()->order(Models::order(Documents::ukCardOrder()));

        self::assertSame([null, 'Zero Rated', 'Zero Rated'], array_map(
            static fn (array $row): ?string => $row['tax_class'] ?? null,
            $data['items']
        ));
        self::assertSame(
            [[310, 'tax_class_id', 1], [405, 'tax_class_id', 1]],
            $tax->products->reads,
            'read once per product, in the order\'s store; the parent product is not read'
        );
        self::assertSame([5], $tax->classReads, 'class names are looked up once');
        self::assertSame([], $tax->logger->lines, 'a deleted product is not an error');
    }

    public function testAClassLessOrUnknownClassGivesNoTaxClass(): void
    {
        $tax = new TaxData();
        $tax->products->raw = [310 => ['tax_class_id' => '0'], 402 => ['tax_class_id' => '9'], 405 => []];
        $data = $tax->extractor()->order(Models::order(Documents::ukCardOrder()));
        self::assertSame([], array_filter(array_column($data['items'], 'tax_class')));
        self::assertSame([], $tax->logger->lines);
    }

    public function testAppliedTaxesOfASavedOrderAreMagentosOrderTaxDetails(): void
    {
        $tax = TaxData::forFixtures();
        $data = $tax->extractor()->order(Models::order(Documents::ukCardOrder()));
        self::assertSame([4410], $tax->detailReads);
        $context = (new SnapshotSerializer())->order($data);
        $vat = static fn (string $amount): array => [
            'code' => 'UK-VAT-20', 'title' => 'VAT 20%', 'percent' => '20', 'amount' => $amount,
            'base_amount' => $amount,
        ];
        // tote 6.00 + scarf 5.00 + shipping 0.90 = 11.90
        self::assertSame([
            'applied_taxes' => [$vat('11.90')],
            'item_applied_taxes' => [
                ['type' => 'product', 'item_id' => 9101, 'associated_item_id' => null,
                    'applied_taxes' => [$vat('6.00')]],
                ['type' => 'product', 'item_id' => 9102, 'associated_item_id' => null,
                    'applied_taxes' => [$vat('5.00')]],
                ['type' => 'shipping', 'item_id' => null, 'associated_item_id' => null,
                    'applied_taxes' => [$vat('0.90')]],
            ],
        ], $context['extension_attributes']);

        // An order Magento applied no tax to says so with empty lists.
        $none = (new SnapshotSerializer())->order(
            $tax->extractor()->order(Models::order(Documents::euroGuestOrder()))
        );
        self::assertSame(['applied_taxes' => [], 'item_applied_taxes' => []], $none['extension_attributes']);
    }

    public function testAppliedTaxesOfAnOrderStillBeingPlacedComeFromTheQuoteConversion(): void
    {
        $tax = TaxData::forFixtures();
        $order = Models::order(Documents::ukCardOrder());
        // Checkout captured the payment: the invoice is saved inside the order's save, before
        // Magento writes sales_order_tax. The quote conversion names quote items (801, 802).
        $rate = new DataObject(['code' => 'UK-VAT-20', 'title' => 'VAT 20%', 'percent' => 20.0]);
        $group = static fn (float $amount): DataObject => new DataObject([
            'code' => 'UK-VAT-20', 'title' => 'UK-VAT-20', 'percent' => 20.0, 'amount' => $amount,
            'base_amount' => $amount, 'extension_attributes' => new DataObject(['rates' => [$rate]]),
        ]);
        $order->setData('extension_attributes', new DataObject([
            'converting_from_quote' => true,
            'applied_taxes' => [$group(11.9)],
            'item_applied_taxes' => [
                new DataObject(['type' => 'product', 'item_id' => 801, 'associated_item_id' => null,
                    'applied_taxes' => [$group(6.0)]]),
                new DataObject(['type' => 'product', 'item_id' => 802, 'associated_item_id' => null,
                    'applied_taxes' => [$group(5.0)]]),
                new DataObject(['type' => 'shipping', 'item_id' => null, 'associated_item_id' => null,
                    'applied_taxes' => [$group(0.9)]]),
            ],
        ]));
        $serializer = new SnapshotSerializer();
        $fromQuote = $serializer->order($tax->extractor()->order($order));
        self::assertSame([], $tax->detailReads, 'the saved rows do not exist yet');
        $saved = $serializer->order($tax->extractor()->order(Models::order(Documents::ukCardOrder())));
        self::assertSame(
            $saved['extension_attributes'],
            $fromQuote['extension_attributes'],
            'the same as Magento reports once the order is saved'
        );

        // Once Magento has saved the rows (same request, later save) they are read instead.
        $tax->detailReads = [];
        $order->setData('applied_tax_is_saved', true);
        $tax->extractor()->order($order);
        self::assertSame([4410], $tax->detailReads);
    }

    public function testTaxSettingsAreReadForTheOrdersStore(): void
    {
        $tax = new TaxData();
        $tax->storeConfig[1] = [
            'tax/calculation/based_on' => 'origin',
            'tax/calculation/price_includes_tax' => '1',
            'tax/calculation/shipping_includes_tax' => '0',
            'tax/calculation/apply_after_discount' => '1',
            // discount_tax not set at all
        ];
        $tax->storeConfig[3] = ['tax/calculation/based_on' => 'billing'];
        $data = $tax->extractor()->order(Models::order(Documents::ukCardOrder()));
        self::assertSame(
            ['based_on' => 'origin', 'price_includes_tax' => true, 'shipping_includes_tax' => false,
                'apply_after_discount' => true],
            $data['tax_config']
        );
        self::assertSame(['store'], array_unique(array_column($tax->configReads, 1)));
        self::assertSame([1], array_unique(array_column($tax->configReads, 2)), 'the order\'s store view');

        $tax->storeConfig[1] = ['tax/calculation/based_on' => 'destination'];
        self::assertArrayNotHasKey(
            'tax_config',
            $tax->extractor()->order(Models::order(Documents::ukCardOrder())),
            'a value Magento does not offer is left out'
        );
    }

    public function testATaxFactThatCannotBeReadIsLeftOutAndLogged(): void
    {
        $tax = TaxData::forFixtures();
        $tax->classFailure = new \RuntimeException('tax_class table is locked');
        $tax->detailsFailure = new \RuntimeException('sales_order_tax is gone');
        $tax->configFailure = new \RuntimeException('config cache corrupt');
        $data = $tax->extractor()->order(Models::order(Documents::ukCardOrder()));

        self::assertSame([], array_filter(array_column($data['items'], 'tax_class')));
        self::assertArrayNotHasKey('applied_taxes', $data);
        self::assertArrayNotHasKey('item_applied_taxes', $data);
        self::assertArrayNotHasKey('tax_config', $data);
        $warnings = array_column(array_filter($tax->logger->lines, static fn ($l) => $l[0] === 'warning'), 1);
        self::assertCount(5, $warnings, implode("\n", $warnings));
        self::assertStringContainsString('could not read the tax class of product 310 (order item 9101)', $warnings[0]);
        self::assertStringContainsString('could not read the applied taxes of order 4410', $warnings[3]);
        self::assertStringContainsString('could not read the tax settings of store 1 (order 4410)', $warnings[4]);

        // The rest of the order is there and the event is still built.
        $payload = (new SnapshotSerializer())->invoiceCreated(
            Documents::ukCardInvoice(),
            $data,
            new \DateTimeImmutable('2025-04-02T10:14:12Z')
        );
        self::assertSame('braintree', $payload['order']['payment']['method']);
        self::assertArrayNotHasKey('extension_attributes', $payload['order']);
        self::assertArrayNotHasKey('tax_config', $payload['order']);
    }

    public function testCustomerAddressesWithRegionCode(): void
    {
        $customer = Models::customer(Documents::b2bCustomer());
        $data = TaxData::forFixtures()->extractor()->customer($customer);
        self::assertCount(2, $data['addresses']);
        self::assertSame('44', $data['addresses'][0]['region_code']);
    }

    public function testRebuilderLoadsTheEntityOrRejectsWhenItIsGone(): void
    {
        $invoices = $this->createMock(InvoiceRepositoryInterface::class);
        $invoices->method('get')->willReturnCallback(static function ($id) {
            if ($id === 3301) {
                return Models::invoice(Documents::ukCardInvoice(), Models::order(Documents::ukCardOrder()));
            }
            throw new NoSuchEntityException('No such entity with id = ' . $id);
        });
        $rebuilder = new EntityRebuilder(
            $invoices,
            $this->createMock(CreditmemoRepositoryInterface::class),
            new CustomerFactory(),
            $this->createMock(ProductRepositoryInterface::class),
            TaxData::forFixtures()->extractor(),
            new SnapshotSerializer()
        );
        $now = (new FixedClock())->now();
        $key = 'invoice.paid:3301';
        $record = new OutboxRecord('e', EventType::InvoicePaid, $key, 'invoice', 3301, 1, 1, $now, [], null);
        $payload = $rebuilder->rebuild($record);
        self::assertSame('2025-04-02T10:14:12Z', $payload['payment']['paid_at'], 'event time, not rebuild time');

        $key = 'invoice.created:9';
        $gone = new OutboxRecord('e', EventType::InvoiceCreated, $key, 'invoice', 9, 1, 1, $now, [], null);
        $this->expectException(RejectedException::class);
        $this->expectExceptionMessage('invoice 9 no longer exists');
        $rebuilder->rebuild($gone);
    }

    public function testSourceAndRegistry(): void
    {
        $metadata = $this->createMock(ProductMetadataInterface::class);
        $metadata->method('getVersion')->willReturn('2.4.7-p3');
        $metadata->method('getEdition')->willReturn('Community');
        self::assertSame(
            [
                'module_version' => ModuleSource::MODULE_VERSION,
                'magento_version' => '2.4.7-p3',
                'magento_edition' => 'Community',
            ],
            (new ModuleSource($metadata))->source()
        );
        $composer = json_decode((string) file_get_contents(dirname(__DIR__, 3) . '/composer.json'), true);
        self::assertSame($composer['version'], ModuleSource::MODULE_VERSION);

        $registry = new NewEntityRegistry();
        $a = new \stdClass();
        $registry->markNew($a);
        self::assertTrue($registry->takeNew($a));
        self::assertFalse($registry->takeNew($a), 'consumed');
        self::assertFalse($registry->takeNew(new \stdClass()));
    }
}
