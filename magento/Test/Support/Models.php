<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Magento\Catalog\Model\Product;
use Magento\Customer\Model\Address;
use Magento\Customer\Model\Customer;
use Magento\Framework\Model\AbstractModel;
use Magento\Sales\Model\Order;
use Magento\Sales\Model\Order\Address as OrderAddress;
use Magento\Sales\Model\Order\Creditmemo;
use Magento\Sales\Model\Order\Invoice;
use Magento\Sales\Model\Order\Item;
use Magento\Sales\Model\Order\Payment;

/** Builds the stand-in Magento models from the fixture arrays, the way Magento holds them. */
final class Models
{
    public static function order(array $data): Order
    {
        // Tax classes, applied taxes and tax settings are not order columns: Magento keeps them
        // elsewhere (see TaxData), so they are not in the model's data.
        $order = new Order(self::without($data, [
            'items', 'billing_address', 'shipping_address', 'payment', 'applied_taxes', 'item_applied_taxes',
            'tax_config', 'invoices',
        ]));
        foreach ($data['invoices'] ?? [] as $row) {
            $order->invoices[] = new Invoice($row);
        }
        foreach ($data['items'] ?? [] as $row) {
            $item = new Item(self::without($row, ['is_dummy', 'tax_class']));
            $item->dummy = (bool) ($row['is_dummy'] ?? false);
            $order->items[] = $item;
        }
        $order->billingAddress = isset($data['billing_address']) ? new OrderAddress($data['billing_address']) : null;
        $order->shippingAddress = isset($data['shipping_address']) ? new OrderAddress($data['shipping_address']) : null;
        $order->payment = isset($data['payment']) ? new Payment($data['payment']) : null;
        // Related objects Magento keeps in a model's data; the extractor must not copy them.
        $order->setData('extension_attributes', new \stdClass());
        return $order;
    }

    public static function invoice(array $data, ?Order $order): Invoice
    {
        $invoice = new Invoice(self::without($data, ['items']));
        foreach ($data['items'] ?? [] as $row) {
            $invoice->items[] = new AbstractModel($row);
        }
        $invoice->order = $order;
        $invoice->setData('order', $order);
        return $invoice;
    }

    public static function creditmemo(array $data, ?Order $order): Creditmemo
    {
        $creditmemo = new Creditmemo(self::without($data, ['items']));
        foreach ($data['items'] ?? [] as $row) {
            $creditmemo->items[] = new AbstractModel($row);
        }
        $creditmemo->order = $order;
        return $creditmemo;
    }

    public static function customer(array $data): Customer
    {
        $customer = new Customer(self::without($data, ['addresses']));
        foreach ($data['addresses'] ?? [] as $row) {
            $address = new Address($row + ['customer_id' => $data['entity_id']]);
            $address->customer = $customer;
            $customer->addresses[] = $address;
        }
        return $customer;
    }

    public static function product(array $data): Product
    {
        return new Product($data);
    }

    private static function without(array $data, array $keys): array
    {
        return array_diff_key($data, array_flip($keys));
    }
}
