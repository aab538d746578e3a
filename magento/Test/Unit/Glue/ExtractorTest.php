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
use Ledger\SageSync\Model\Snapshot\MagentoExtractor;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedClock;
use Ledger\SageSync\Test\Support\Models;
use Magento\Catalog\Api\ProductRepositoryInterface;
use Magento\Customer\Model\CustomerFactory;
use Magento\Framework\App\ProductMetadataInterface;
use Magento\Framework\Exception\NoSuchEntityException;
use Magento\Sales\Api\CreditmemoRepositoryInterface;
use Magento\Sales\Api\InvoiceRepositoryInterface;
use PHPUnit\Framework\TestCase;

final class ExtractorTest extends TestCase
{
    public function testModelsBecomeTheSerializersArrays(): void
    {
        $extractor = new MagentoExtractor();
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

    public function testCustomerAddressesWithRegionCode(): void
    {
        $customer = Models::customer(Documents::b2bCustomer());
        $data = (new MagentoExtractor())->customer($customer);
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
            new MagentoExtractor(),
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
