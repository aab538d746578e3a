<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Core;

use DateTimeImmutable;
use Ledger\SageSync\Core\Snapshot\SnapshotException;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Test\Fixture\Documents;
use PHPUnit\Framework\TestCase;

final class SnapshotSerializerTest extends TestCase
{
    private SnapshotSerializer $serializer;
    private DateTimeImmutable $now;

    protected function setUp(): void
    {
        $this->serializer = new SnapshotSerializer();
        $this->now = new DateTimeImmutable('2025-04-02T10:14:12Z');
    }

    public function testInvoiceMoneyIsDecimalStringsAndLinesAreEnrichedFromTheOrder(): void
    {
        $payload = $this->serializer->invoiceCreated(Documents::ukCardInvoice(), Documents::ukCardOrder(), $this->now);
        $invoice = $payload['invoice'];
        self::assertSame(3301, $invoice['entity_id']);
        self::assertSame(4410, $invoice['order_id']);
        self::assertSame(2, $invoice['state']);
        self::assertSame('71.40', $invoice['grand_total']);
        self::assertSame('11.90', $invoice['tax_amount']);
        self::assertSame('0.00', $invoice['discount_amount']);
        self::assertSame('1', $invoice['base_to_order_rate']);
        self::assertSame('4', $invoice['total_qty']);
        self::assertArrayNotHasKey('base_shipping_discount_tax_compensation_amnt', $invoice, 'nulls are omitted');
        self::assertArrayNotHasKey('email_sent', $invoice);

        [$tote, $scarf, $child] = $invoice['items'];
        self::assertSame(['order_item_id' => 9101, 'sku' => 'TOTE-CANVAS', 'qty' => '2', 'price' => '15.00'], [
            'order_item_id' => $tote['order_item_id'], 'sku' => $tote['sku'], 'qty' => $tote['qty'],
            'price' => $tote['price'],
        ]);
        self::assertSame('20', $tote['tax_percent']);
        self::assertSame('simple', $tote['product_type']);
        self::assertFalse($tote['is_dummy']);
        self::assertSame('configurable', $scarf['product_type']);
        self::assertSame(9102, $child['parent_item_id']);
        self::assertTrue($child['is_dummy']);
        self::assertArrayNotHasKey('row_total', $child, 'a dummy line carries no amounts');
    }

    public function testOrderContextKeepsIdentityAndDropsPaymentSecrets(): void
    {
        $order = $this->serializer->order(Documents::ukCardOrder());
        self::assertSame(731, $order['customer_id']);
        self::assertSame(0, $order['customer_is_guest']);
        $payment = ['method' => 'braintree', 'po_number' => null, 'last_trans_id' => 'bt_9q2x7m'];
        self::assertSame($payment, $order['payment']);
        self::assertSame(['Flat 2', '18 Harbour Road'], $order['billing_address']['street']);
        self::assertSame('GB', $order['billing_address']['country_id']);
        self::assertArrayNotHasKey('protect_code', $order);
        self::assertArrayNotHasKey('remote_ip', $order);
        $json = json_encode($order);
        self::assertStringNotContainsString('secret-token', $json);
        self::assertStringNotContainsString('1111', $json);
    }

    public function testGuestOrderInForeignCurrencyWithDiscountSigns(): void
    {
        $payload = $this->serializer->invoiceCreated(
            Documents::euroGuestInvoice(),
            Documents::euroGuestOrder(),
            $this->now
        );
        self::assertSame('-3.00', $payload['invoice']['discount_amount'], 'header discount stays negative');
        self::assertSame('3.00', $payload['invoice']['items'][0]['discount_amount'], 'item discount stays positive');
        self::assertSame('1.165', $payload['invoice']['base_to_order_rate']);
        self::assertSame('EUR', $payload['invoice']['order_currency_code']);
        self::assertNull($payload['order']['customer_id']);
        self::assertSame(1, $payload['order']['customer_is_guest']);
        self::assertSame('Lukas.Brenner@Example.test', $payload['order']['customer_email'], 'trimmed');
        self::assertNull($payload['order']['shipping_address'], 'virtual order');
        self::assertSame('Köln', $payload['order']['billing_address']['city']);
    }

    public function testOrderContextCarriesTheTaxFacts(): void
    {
        $order = $this->serializer->order(Documents::ukCardOrder());
        self::assertSame(
            ['Taxable Goods', 'Taxable Goods', 'Taxable Goods'],
            array_column($order['items'], 'tax_class')
        );
        self::assertSame(['applied_taxes', 'item_applied_taxes'], array_keys($order['extension_attributes']));
        self::assertSame(
            ['code' => 'UK-VAT-20', 'title' => 'VAT 20%', 'percent' => '20', 'amount' => '11.90',
                'base_amount' => '11.90'],
            $order['extension_attributes']['applied_taxes'][0],
            'floats from Magento become decimal strings'
        );
        self::assertSame(
            [[9101, 'product'], [9102, 'product'], [null, 'shipping']],
            array_map(
                static fn (array $l): array => [$l['item_id'], $l['type']],
                $order['extension_attributes']['item_applied_taxes']
            )
        );
        self::assertSame(
            ['based_on' => 'shipping', 'price_includes_tax' => true, 'shipping_includes_tax' => true,
                'apply_after_discount' => true, 'discount_tax' => true],
            $order['tax_config']
        );

        $older = $this->serializer->order(Documents::bundleOrder());
        self::assertArrayNotHasKey('extension_attributes', $older, 'unknown is not sent as "none"');
        self::assertArrayNotHasKey('tax_config', $older);
        self::assertSame([], array_column($older['items'], 'tax_class'));
    }

    public function testUnreadableTaxDetailsAreLeftOutWithoutFailingTheEvent(): void
    {
        $order = Documents::ukCardOrder();
        $order['items'][0]['tax_class'] = '   ';
        $order['applied_taxes'] = [
            ['code' => 'UK-VAT-20', 'percent' => '20', 'amount' => 'n/a', 'base_amount' => 11.9],
            ['code' => '', 'percent' => '20'],
            ['code' => 'PCT', 'percent' => '20%'],
            ['code' => 'OVER', 'percent' => '120'],
            ['code' => 'NEG', 'percent' => '-5'],
            ['code' => 'MAX', 'percent' => '100.0000'],
            'garbage',
        ];
        $order['item_applied_taxes'] = [
            ['item_id' => '9101', 'applied_taxes' => []],
            ['type' => 'product', 'item_id' => 'abc', 'applied_taxes' => 'none'],
        ];
        $order['tax_config'] = ['based_on' => 'destination', 'price_includes_tax' => '1', 'discount_tax' => false,
            'catalog_prices' => true];
        $context = $this->serializer->order($order);

        self::assertArrayNotHasKey('tax_class', $context['items'][0], 'blank is no class');
        self::assertSame([
            ['code' => 'UK-VAT-20', 'title' => null, 'percent' => '20', 'base_amount' => '11.90'],
            ['code' => 'MAX', 'title' => null, 'percent' => '100'],
        ], $context['extension_attributes']['applied_taxes']);
        self::assertSame(
            [['type' => 'product', 'item_id' => null, 'associated_item_id' => null, 'applied_taxes' => []]],
            $context['extension_attributes']['item_applied_taxes']
        );
        self::assertSame(['discount_tax' => false], $context['tax_config']);
    }

    public function testDeletedCustomerAccountIsReportedAsGuest(): void
    {
        $order = Documents::ukCardOrder();
        $order['customer_id'] = null;
        $context = $this->serializer->order($order);
        self::assertSame(1, $context['customer_is_guest']);
        self::assertNull($context['customer_id']);
    }

    public function testInvoiceLinesWithZeroQuantityAreLeftOutButCreditMemoLinesStay(): void
    {
        $invoice = $this->serializer->invoiceCreated(Documents::bundleInvoice(), Documents::bundleOrder(), $this->now);
        self::assertSame(['9401', '9402', '9403'], array_map(
            static fn (array $i): string => (string) $i['order_item_id'],
            $invoice['invoice']['items']
        ));
        self::assertTrue($invoice['invoice']['items'][0]['is_dummy'], 'dynamic bundle parent is the dummy');
        self::assertSame('8.25', $invoice['invoice']['items'][1]['tax_percent']);
        self::assertSame(['200 Pier Ave', 'Suite 5'], $invoice['order']['billing_address']['street']);

        $memo = $this->serializer->creditmemoCreated(Documents::ukCreditmemo(), Documents::ukCardOrder(), $this->now);
        self::assertSame('0', $memo['creditmemo']['items'][0]['qty']);
        self::assertCount(3, $memo['creditmemo']['items']);
    }

    public function testCreditMemoAdjustmentsAndInvoiceLink(): void
    {
        $memo = $this->serializer->creditmemoCreated(Documents::ukCreditmemo(), Documents::ukCardOrder(), $this->now);
        $document = $memo['creditmemo'];
        self::assertSame(3301, $document['invoice_id']);
        self::assertSame('2.00', $document['adjustment_positive']);
        self::assertSame('5.00', $document['adjustment_negative']);
        self::assertSame('-3.00', $document['adjustment']);
        self::assertSame('32.40', $document['grand_total']);

        $offline = $this->serializer->creditmemoCreated(
            Documents::offlineCreditmemo(),
            Documents::bundleOrder(),
            $this->now
        );
        self::assertNull($offline['creditmemo']['invoice_id']);
        self::assertSame([], $offline['creditmemo']['items']);
    }

    public function testInvoiceStillInsideItsTransaction(): void
    {
        $payload = $this->serializer->invoiceCreated(
            Documents::inFlightInvoice(),
            Documents::ukCardOrder(),
            $this->now
        );
        $invoice = $payload['invoice'];
        self::assertSame('2025-04-02 10:14:12', $invoice['created_at'], 'created_at falls back to the event time');
        self::assertSame('0.30', $invoice['subtotal']);
        self::assertSame('4.80', $invoice['grand_total']);
        self::assertSame('0.00', $invoice['discount_amount'], 'negative float zero is plain zero');
        self::assertSame('0.00', $invoice['base_discount_amount'], 'a required total left null is zero');
        self::assertSame('0.30', $invoice['items'][0]['row_total']);
        self::assertArrayNotHasKey('entity_id', $invoice['items'][0], 'items are not saved yet');
        self::assertSame('GBP', $invoice['base_currency_code'], 'currency copied from the order');
    }

    public function testPaidInvoiceCarriesPaymentFacts(): void
    {
        $payload = $this->serializer->invoicePaid(Documents::ukCardInvoice(), Documents::ukCardOrder(), $this->now);
        self::assertSame([
            'method' => 'braintree',
            'currency' => 'GBP',
            'amount_paid' => '71.40',
            'base_amount_paid' => '71.40',
            'transaction_id' => 'bt_9q2x7m',
            'paid_at' => '2025-04-02T10:14:12Z',
        ], $payload['payment']);
    }

    public function testPaidEventForAnOpenInvoiceIsRefused(): void
    {
        $this->expectException(SnapshotException::class);
        $this->serializer->invoicePaid(Documents::inFlightInvoice(), Documents::ukCardOrder(), $this->now);
    }

    public function testInvoiceWithoutBillingAddressIsRefused(): void
    {
        $order = Documents::ukCardOrder();
        unset($order['billing_address']);
        $this->expectException(SnapshotException::class);
        $this->serializer->invoiceCreated(Documents::ukCardInvoice(), $order, $this->now);
    }

    public function testCustomerWithAddressBookAndNoSecrets(): void
    {
        $customer = $this->serializer->customerSaved(Documents::b2bCustomer())['customer'];
        self::assertSame(5120, $customer['id']);
        self::assertSame(2, $customer['group_id']);
        self::assertSame('871', $customer['default_billing']);
        self::assertSame('FR40123456824', $customer['taxvat']);
        self::assertCount(2, $customer['addresses']);
        self::assertSame(
            ['region_code' => '44', 'region' => 'Loire-Atlantique', 'region_id' => 226],
            $customer['addresses'][0]['region']
        );
        self::assertTrue($customer['addresses'][0]['default_billing']);
        self::assertFalse($customer['addresses'][0]['default_shipping']);
        self::assertTrue($customer['addresses'][1]['default_shipping']);
        self::assertSame(['7 quai de la Fosse', 'Bâtiment C'], $customer['addresses'][0]['street']);
        $json = json_encode($customer);
        foreach (['password_hash', 'rp_token', 'e3b0c442', 'd0c5f1e7', 'failures_num'] as $secret) {
            self::assertStringNotContainsString($secret, $json);
        }
    }

    public function testProducts(): void
    {
        $products = Documents::products();
        $simple = $this->serializer->productSaved($products['simple'])['product'];
        self::assertSame(['id' => 310, 'sku' => 'TOTE-CANVAS', 'name' => 'Canvas Tote', 'type_id' => 'simple',
            'status' => 1, 'price' => '15.00', 'tax_class_id' => 2, 'attribute_set_id' => 4, 'visibility' => 4,
            'weight' => '0.45', 'created_at' => '2024-01-10 12:00:00', 'updated_at' => '2025-04-01 08:30:00',
            'custom_attributes' => [['attribute_code' => 'cost', 'value' => '6.2']]], $simple);
        self::assertArrayNotHasKey('extension_attributes', $simple, 'no stock data, no stock_item');
        $stocked = $this->serializer->productSaved($products['stocked'])['product'];
        self::assertSame(
            ['stock_item' => ['manage_stock' => true, 'is_in_stock' => true, 'qty' => '40']],
            $stocked['extension_attributes']
        );
        self::assertSame([['attribute_code' => 'cost', 'value' => '3.25']], $stocked['custom_attributes']);
        $unreadable = $this->serializer->productSaved($products['stock-unreadable'])['product'];
        self::assertSame(['stock_item' => ['is_in_stock' => false]], $unreadable['extension_attributes']);
        self::assertArrayNotHasKey('custom_attributes', $unreadable, 'a cost that is not a number is left out');
        self::assertArrayNotHasKey('tax_class_id', $this->serializer->productSaved($products['grouped'])['product']);
        self::assertSame(0, $this->serializer->productSaved($products['no-tax-class'])['product']['tax_class_id']);
        self::assertSame(2, $this->serializer->productSaved($products['grouped'])['product']['status']);
    }
}
