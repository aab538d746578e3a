<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Fixture;

/**
 * Magento data as the models hold it (getData()): database decimals come back as strings with four
 * decimals, ids as digit strings, flags as "0"/"1". Invented stores and people; the shapes follow
 * real REST/database documents (configurable child lines without row_total, dynamic bundle parents
 * without amounts, negative header discount, guest orders without customer_id, offline refunds
 * without invoice_id, customers carrying secrets that must never leave the store).
 */
final class Documents
{
    private static function address(array $overrides): array
    {
        return $overrides + [
            'entity_id' => '6601',
            'parent_id' => '4410',
            'customer_address_id' => null,
            'quote_address_id' => '9120',
            'region_id' => null,
            'customer_id' => null,
            'fax' => null,
            'region' => 'Devon',
            'postcode' => 'EX1 1AA',
            'lastname' => 'Whitcombe',
            'street' => "Flat 2\n18 Harbour Road",
            'city' => 'Exeter',
            'email' => 'martha.whitcombe@example.test',
            'telephone' => '01392 000000',
            'country_id' => 'GB',
            'firstname' => 'Martha',
            'address_type' => 'billing',
            'prefix' => null,
            'middlename' => null,
            'suffix' => null,
            'company' => null,
            'vat_id' => null,
            'vat_is_valid' => null,
            'vat_request_id' => null,
            'vat_request_date' => null,
            'vat_request_success' => null,
        ];
    }

    private static function currency(string $base, string $order, string $rate): array
    {
        return [
            'base_currency_code' => $base,
            'order_currency_code' => $order,
            'global_currency_code' => $base,
            'store_currency_code' => $base,
            'base_to_order_rate' => $rate,
            'base_to_global_rate' => '1.0000',
            'store_to_base_rate' => '0.0000',
            'store_to_order_rate' => '0.0000',
        ];
    }

    /** A UK order paid by card: a simple product and a configurable (parent + dummy child), 20 % VAT. */
    public static function ukCardOrder(): array
    {
        return self::currency('GBP', 'GBP', '1.0000') + [
            'entity_id' => '4410',
            'increment_id' => '000004410',
            'state' => 'processing',
            'status' => 'processing',
            'store_id' => '1',
            'created_at' => '2025-04-02 10:14:09',
            'customer_id' => '731',
            'customer_is_guest' => '0',
            'customer_email' => 'martha.whitcombe@example.test',
            'customer_firstname' => 'Martha',
            'customer_lastname' => 'Whitcombe',
            'customer_taxvat' => null,
            'customer_group_id' => '1',
            'grand_total' => '71.4000',
            'base_grand_total' => '71.4000',
            'protect_code' => 'a1b2c3',
            'remote_ip' => '203.0.113.9',
            'items' => [
                ['item_id' => '9101', 'parent_item_id' => null, 'product_id' => '310', 'product_type' => 'simple',
                    'sku' => 'TOTE-CANVAS', 'name' => 'Canvas Tote', 'qty_ordered' => '2.0000',
                    'tax_percent' => '20.0000', 'is_virtual' => '0', 'is_dummy' => false, 'quote_item_id' => '801',
                    'tax_class' => 'Taxable Goods'],
                ['item_id' => '9102', 'parent_item_id' => null, 'product_id' => '402', 'product_type' => 'configurable',
                    'sku' => 'SCARF-MERINO-GREY', 'name' => 'Merino Scarf', 'qty_ordered' => '1.0000',
                    'tax_percent' => '20.0000', 'is_virtual' => '0', 'is_dummy' => false, 'quote_item_id' => '802',
                    'tax_class' => 'Taxable Goods'],
                ['item_id' => '9103', 'parent_item_id' => '9102', 'product_id' => '405', 'product_type' => 'simple',
                    'sku' => 'SCARF-MERINO-GREY', 'name' => 'Merino Scarf-Grey', 'qty_ordered' => '1.0000',
                    'tax_percent' => '0.0000', 'is_virtual' => '0', 'is_dummy' => true, 'quote_item_id' => '803',
                    'tax_class' => 'Taxable Goods'],
            ],
            // What Magento reports for the saved order (OrderTaxManagementInterface::getOrderTaxDetails):
            // tote 6.00 + scarf 5.00 + shipping 0.90 = 11.90, the invoice's tax_amount. Amounts are
            // floats there (Magento adds the rows up in PHP), the percent is the decimal column.
            'applied_taxes' => [
                ['code' => 'UK-VAT-20', 'title' => 'VAT 20%', 'percent' => '20.0000', 'amount' => 11.9,
                    'base_amount' => 11.9],
            ],
            'item_applied_taxes' => [
                ['type' => 'product', 'item_id' => '9101', 'associated_item_id' => null, 'applied_taxes' => [
                    ['code' => 'UK-VAT-20', 'title' => 'VAT 20%', 'percent' => '20.0000', 'amount' => 6.0,
                        'base_amount' => 6.0],
                ]],
                ['type' => 'product', 'item_id' => '9102', 'associated_item_id' => null, 'applied_taxes' => [
                    ['code' => 'UK-VAT-20', 'title' => 'VAT 20%', 'percent' => '20.0000', 'amount' => 5.0,
                        'base_amount' => 5.0],
                ]],
                ['type' => 'shipping', 'item_id' => null, 'associated_item_id' => null, 'applied_taxes' => [
                    ['code' => 'UK-VAT-20', 'title' => 'VAT 20%', 'percent' => '20.0000', 'amount' => 0.9,
                        'base_amount' => 0.9],
                ]],
            ],
            'tax_config' => ['based_on' => 'shipping', 'price_includes_tax' => true, 'shipping_includes_tax' => true,
                'apply_after_discount' => true, 'discount_tax' => true],
            'billing_address' => self::address(['customer_id' => '731', 'customer_address_id' => '880']),
            'shipping_address' => self::address([
                'entity_id' => '6602', 'address_type' => 'shipping', 'customer_id' => '731',
                'customer_address_id' => '880',
            ]),
            'payment' => [
                'entity_id' => '4410', 'parent_id' => '4410', 'method' => 'braintree', 'po_number' => null,
                'last_trans_id' => 'bt_9q2x7m', 'cc_last_4' => '1111', 'cc_exp_year' => '2029',
                'additional_information' => ['cc_token' => 'secret-token'],
                'amount_paid' => '71.4000', 'base_amount_paid' => '71.4000',
            ],
        ];
    }

    public static function ukCardInvoice(): array
    {
        return self::currency('GBP', 'GBP', '1.0000') + [
            'entity_id' => '3301',
            'increment_id' => '000003301',
            'order_id' => '4410',
            'store_id' => '1',
            'state' => '2',
            'created_at' => '2025-04-02 10:14:11',
            'updated_at' => '2025-04-02 10:14:11',
            'transaction_id' => 'bt_9q2x7m',
            'billing_address_id' => '6601',
            'shipping_address_id' => '6602',
            'grand_total' => '71.4000', 'base_grand_total' => '71.4000',
            'subtotal' => '55.0000', 'base_subtotal' => '55.0000',
            'subtotal_incl_tax' => '66.0000', 'base_subtotal_incl_tax' => '66.0000',
            'tax_amount' => '11.9000', 'base_tax_amount' => '11.9000',
            'shipping_amount' => '4.5000', 'base_shipping_amount' => '4.5000',
            'shipping_tax_amount' => '0.9000', 'base_shipping_tax_amount' => '0.9000',
            'shipping_incl_tax' => '5.4000', 'base_shipping_incl_tax' => '5.4000',
            'discount_amount' => '0.0000', 'base_discount_amount' => '0.0000',
            'discount_tax_compensation_amount' => '0.0000',
            'base_discount_tax_compensation_amount' => '0.0000',
            'shipping_discount_tax_compensation_amount' => '0.0000',
            'base_shipping_discount_tax_compensation_amnt' => null,
            'total_qty' => '4.0000',
            'email_sent' => '1',
            'send_email' => '1',
            'is_used_for_refund' => null,
            'items' => [
                ['entity_id' => '5501', 'parent_id' => '3301', 'order_item_id' => '9101', 'product_id' => '310',
                    'sku' => 'TOTE-CANVAS', 'name' => 'Canvas Tote', 'qty' => '2.0000',
                    'price' => '15.0000', 'base_price' => '15.0000', 'price_incl_tax' => '18.0000',
                    'base_price_incl_tax' => '18.0000', 'row_total' => '30.0000', 'base_row_total' => '30.0000',
                    'row_total_incl_tax' => '36.0000', 'base_row_total_incl_tax' => '36.0000',
                    'discount_amount' => '0.0000', 'base_discount_amount' => '0.0000', 'tax_amount' => '6.0000',
                    'base_tax_amount' => '6.0000', 'discount_tax_compensation_amount' => '0.0000',
                    'base_discount_tax_compensation_amount' => '0.0000', 'base_cost' => '6.2000'],
                ['entity_id' => '5502', 'parent_id' => '3301', 'order_item_id' => '9102', 'product_id' => '402',
                    'sku' => 'SCARF-MERINO-GREY', 'name' => 'Merino Scarf', 'qty' => '1.0000',
                    'price' => '25.0000', 'base_price' => '25.0000', 'price_incl_tax' => '30.0000',
                    'base_price_incl_tax' => '30.0000', 'row_total' => '25.0000', 'base_row_total' => '25.0000',
                    'row_total_incl_tax' => '30.0000', 'base_row_total_incl_tax' => '30.0000',
                    'discount_amount' => '0.0000', 'base_discount_amount' => '0.0000', 'tax_amount' => '5.0000',
                    'base_tax_amount' => '5.0000'],
                ['entity_id' => '5503', 'parent_id' => '3301', 'order_item_id' => '9103', 'product_id' => '405',
                    'sku' => 'SCARF-MERINO-GREY', 'name' => 'Merino Scarf-Grey', 'qty' => '1.0000',
                    'price' => '0.0000', 'base_price' => '0.0000'],
            ],
        ];
    }

    /** A guest buys an e-book in EUR on a GBP website, 10 % coupon, check/money order (paid at creation). */
    public static function euroGuestOrder(): array
    {
        return self::currency('GBP', 'EUR', '1.1650') + [
            'entity_id' => '4522',
            'increment_id' => '200000087',
            'state' => 'processing',
            'status' => 'processing',
            'store_id' => '3',
            'created_at' => '2025-04-05 18:40:51',
            'customer_id' => null,
            'customer_is_guest' => '1',
            'customer_email' => '  Lukas.Brenner@Example.test ',
            'customer_firstname' => null,
            'customer_lastname' => null,
            'customer_group_id' => '0',
            'grand_total' => '26.9900',
            'base_grand_total' => '23.1700',
            'items' => [
                ['item_id' => '9301', 'parent_item_id' => null, 'product_id' => '77', 'product_type' => 'downloadable',
                    'sku' => 'EBOOK-COASTAL-WALKS', 'name' => 'Coastal Walks (e-book)', 'qty_ordered' => '1.0000',
                    'tax_percent' => '0.0000', 'is_virtual' => '1', 'is_dummy' => false, 'tax_class' => 'Zero Rated'],
            ],
            // Magento saves no tax row for a 0 % rate: nothing applied, which is not the same as unknown.
            'applied_taxes' => [],
            'item_applied_taxes' => [],
            // Prices entered without tax; a virtual order is taxed where the billing address is.
            'tax_config' => ['based_on' => 'billing', 'price_includes_tax' => false, 'shipping_includes_tax' => false,
                'apply_after_discount' => true, 'discount_tax' => false],
            'billing_address' => self::address([
                'entity_id' => '6790', 'parent_id' => '4522', 'firstname' => 'Lukas', 'lastname' => 'Brenner',
                'street' => 'Lindenstraße 4', 'city' => 'Köln', 'postcode' => '50674',
                'region' => 'Nordrhein-Westfalen',
                'region_id' => '88', 'country_id' => 'DE', 'email' => 'lukas.brenner@example.test',
                'telephone' => '+49 221 0000000',
            ]),
            'shipping_address' => null,
            'payment' => ['method' => 'checkmo', 'po_number' => null, 'last_trans_id' => null],
        ];
    }

    public static function euroGuestInvoice(): array
    {
        return self::currency('GBP', 'EUR', '1.1650') + [
            'entity_id' => '3388',
            'increment_id' => '200000041',
            'order_id' => '4522',
            'store_id' => '3',
            'state' => '2',
            'created_at' => '2025-04-05 18:40:52',
            'transaction_id' => null,
            'billing_address_id' => '6790',
            'shipping_address_id' => null,
            'grand_total' => '26.9900', 'base_grand_total' => '23.1700',
            'subtotal' => '29.9900', 'base_subtotal' => '25.7400',
            'tax_amount' => '0.0000', 'base_tax_amount' => '0.0000',
            'shipping_amount' => '0.0000', 'base_shipping_amount' => '0.0000',
            'discount_amount' => '-3.0000', 'base_discount_amount' => '-2.5700',
            'discount_description' => 'SPRING10',
            'total_qty' => '1.0000',
            'items' => [
                ['entity_id' => '5601', 'parent_id' => '3388', 'order_item_id' => '9301', 'product_id' => '77',
                    'sku' => 'EBOOK-COASTAL-WALKS', 'name' => 'Coastal Walks (e-book)', 'qty' => '1.0000',
                    'price' => '29.9900', 'base_price' => '25.7400', 'row_total' => '29.9900',
                    'base_row_total' => '25.7400', 'discount_amount' => '3.0000', 'base_discount_amount' => '2.5700',
                    'tax_amount' => '0.0000', 'base_tax_amount' => '0.0000'],
            ],
        ];
    }

    /**
     * A US order with a dynamic-price bundle (the parent line is the dummy) and an item not invoiced
     * yet; recorded by an older module, so without tax classes, applied taxes and tax settings.
     */
    public static function bundleOrder(): array
    {
        return self::currency('USD', 'USD', '1.0000') + [
            'entity_id' => '4600',
            'increment_id' => '000004600',
            'state' => 'processing',
            'status' => 'processing',
            'store_id' => '1',
            'created_at' => '2025-04-07 08:00:00',
            'customer_id' => '812',
            'customer_is_guest' => '0',
            'customer_email' => 'ap@harbor-supply.example',
            'customer_firstname' => 'Dana',
            'customer_lastname' => 'Okafor',
            'customer_taxvat' => '12-3456789',
            'customer_group_id' => '2',
            // The order's invoices (Order::getInvoiceCollection()), as the extractor reads them.
            'invoices' => [
                ['entity_id' => '3420', 'increment_id' => '000003420', 'created_at' => '2025-04-07 08:05:00',
                    'grand_total' => '74.9500', 'base_grand_total' => '74.9500', 'state' => '2'],
            ],
            'items' => [
                ['item_id' => '9401', 'parent_item_id' => null, 'product_id' => '500', 'product_type' => 'bundle',
                    'sku' => 'KIT-DESK', 'name' => 'Desk Kit', 'qty_ordered' => '1.0000', 'tax_percent' => null,
                    'is_virtual' => '0', 'is_dummy' => true],
                ['item_id' => '9402', 'parent_item_id' => '9401', 'product_id' => '501', 'product_type' => 'simple',
                    'sku' => 'LAMP-BRASS', 'name' => 'Brass Lamp', 'qty_ordered' => '1.0000',
                    'tax_percent' => '8.2500', 'is_virtual' => '0', 'is_dummy' => false],
                ['item_id' => '9403', 'parent_item_id' => '9401', 'product_id' => '502', 'product_type' => 'simple',
                    'sku' => 'PAD-FELT', 'name' => 'Felt Desk Pad', 'qty_ordered' => '2.0000',
                    'tax_percent' => '8.2500', 'is_virtual' => '0', 'is_dummy' => false],
                ['item_id' => '9404', 'parent_item_id' => null, 'product_id' => '520', 'product_type' => 'simple',
                    'sku' => 'WRAP-GIFT', 'name' => 'Gift Wrap', 'qty_ordered' => '1.0000',
                    'tax_percent' => '8.2500', 'is_virtual' => '0', 'is_dummy' => false],
            ],
            'billing_address' => self::address([
                'entity_id' => '6900', 'parent_id' => '4600', 'customer_id' => '812', 'firstname' => 'Dana',
                'lastname' => 'Okafor', 'company' => 'Harbor Supply LLC', 'street' => ['200 Pier Ave', 'Suite 5'],
                'city' => 'Portland', 'region' => 'Maine', 'region_id' => '23', 'postcode' => '04101',
                'country_id' => 'US', 'email' => 'ap@harbor-supply.example', 'vat_id' => null,
            ]),
            'shipping_address' => self::address([
                'entity_id' => '6901', 'parent_id' => '4600', 'address_type' => 'shipping', 'customer_id' => '812',
                'firstname' => 'Dana', 'lastname' => 'Okafor', 'company' => 'Harbor Supply LLC',
                'street' => '200 Pier Ave', 'city' => 'Portland', 'region' => 'Maine', 'region_id' => '23',
                'postcode' => '04101', 'country_id' => 'US',
            ]),
            'payment' => ['method' => 'banktransfer', 'po_number' => null, 'last_trans_id' => null],
        ];
    }

    public static function bundleInvoice(): array
    {
        return self::currency('USD', 'USD', '1.0000') + [
            'entity_id' => '3420',
            'increment_id' => '000003420',
            'order_id' => '4600',
            'store_id' => '1',
            'state' => '2',
            'created_at' => '2025-04-07 08:05:00',
            'grand_total' => '74.9500', 'base_grand_total' => '74.9500',
            'subtotal' => '60.0000', 'base_subtotal' => '60.0000',
            'tax_amount' => '4.9500', 'base_tax_amount' => '4.9500',
            'shipping_amount' => '10.0000', 'base_shipping_amount' => '10.0000',
            'discount_amount' => '0.0000', 'base_discount_amount' => '0.0000',
            'total_qty' => '4.0000',
            'items' => [
                ['entity_id' => '5701', 'order_item_id' => '9401', 'product_id' => '500', 'sku' => 'KIT-DESK',
                    'name' => 'Desk Kit', 'qty' => '1.0000', 'price' => '60.0000', 'base_price' => '60.0000'],
                ['entity_id' => '5702', 'order_item_id' => '9402', 'product_id' => '501', 'sku' => 'LAMP-BRASS',
                    'name' => 'Brass Lamp', 'qty' => '1.0000', 'price' => '40.0000', 'base_price' => '40.0000',
                    'row_total' => '40.0000', 'base_row_total' => '40.0000', 'tax_amount' => '3.3000',
                    'base_tax_amount' => '3.3000'],
                ['entity_id' => '5703', 'order_item_id' => '9403', 'product_id' => '502', 'sku' => 'PAD-FELT',
                    'name' => 'Felt Desk Pad', 'qty' => '2.0000', 'price' => '10.0000', 'base_price' => '10.0000',
                    'row_total' => '20.0000', 'base_row_total' => '20.0000', 'tax_amount' => '1.6500',
                    'base_tax_amount' => '1.6500'],
                ['entity_id' => '5704', 'order_item_id' => '9404', 'product_id' => '520', 'sku' => 'WRAP-GIFT',
                    'name' => 'Gift Wrap', 'qty' => '0.0000', 'price' => '5.0000', 'base_price' => '5.0000',
                    'row_total' => '0.0000', 'base_row_total' => '0.0000'],
            ],
        ];
    }

    /** Refund of the scarf and shipping on the UK card order, with an adjustment refund and a fee. */
    public static function ukCreditmemo(): array
    {
        return self::currency('GBP', 'GBP', '1.0000') + [
            'entity_id' => '1207',
            'increment_id' => '000001207',
            'order_id' => '4410',
            'invoice_id' => '3301',
            'store_id' => '1',
            'state' => '2',
            'creditmemo_status' => null,
            'created_at' => '2025-04-12 15:30:00',
            'transaction_id' => 'bt_9q2x7m-refund',
            'grand_total' => '32.4000', 'base_grand_total' => '32.4000',
            'subtotal' => '25.0000', 'base_subtotal' => '25.0000',
            'tax_amount' => '5.9000', 'base_tax_amount' => '5.9000',
            'shipping_amount' => '4.5000', 'base_shipping_amount' => '4.5000',
            'shipping_tax_amount' => '0.9000', 'base_shipping_tax_amount' => '0.9000',
            'discount_amount' => '0.0000', 'base_discount_amount' => '0.0000',
            'adjustment_positive' => '2.0000', 'base_adjustment_positive' => '2.0000',
            'adjustment_negative' => '5.0000', 'base_adjustment_negative' => '5.0000',
            'adjustment' => '-3.0000', 'base_adjustment' => '-3.0000',
            'items' => [
                ['entity_id' => '2801', 'parent_id' => '1207', 'order_item_id' => '9101', 'sku' => 'TOTE-CANVAS',
                    'name' => 'Canvas Tote', 'qty' => '0.0000', 'price' => '15.0000', 'base_price' => '15.0000',
                    'row_total' => '0.0000', 'base_row_total' => '0.0000'],
                ['entity_id' => '2802', 'parent_id' => '1207', 'order_item_id' => '9102', 'sku' => 'SCARF-MERINO-GREY',
                    'name' => 'Merino Scarf', 'qty' => '1.0000', 'price' => '25.0000', 'base_price' => '25.0000',
                    'row_total' => '25.0000', 'base_row_total' => '25.0000', 'tax_amount' => '5.0000',
                    'base_tax_amount' => '5.0000'],
                ['entity_id' => '2803', 'parent_id' => '1207', 'order_item_id' => '9103', 'sku' => 'SCARF-MERINO-GREY',
                    'name' => 'Merino Scarf-Grey', 'qty' => '1.0000', 'price' => '0.0000', 'base_price' => '0.0000'],
            ],
        ];
    }

    /** An offline refund of the gift wrap, not tied to an invoice (no invoice_id key at all). */
    public static function offlineCreditmemo(): array
    {
        return self::currency('USD', 'USD', '1.0000') + [
            'entity_id' => '1250',
            'increment_id' => '000001250',
            'order_id' => '4600',
            'store_id' => '1',
            'state' => '2',
            'created_at' => '2025-04-20 09:00:00',
            'grand_total' => '5.0000', 'base_grand_total' => '5.0000',
            'subtotal' => '5.0000', 'base_subtotal' => '5.0000',
            'tax_amount' => '0.0000', 'base_tax_amount' => '0.0000',
            'shipping_amount' => '0.0000', 'base_shipping_amount' => '0.0000',
            'discount_amount' => '0.0000', 'base_discount_amount' => '0.0000',
            'adjustment_positive' => '5.0000', 'base_adjustment_positive' => '5.0000',
            'adjustment_negative' => '0.0000', 'base_adjustment_negative' => '0.0000',
            'adjustment' => '5.0000', 'base_adjustment' => '5.0000',
            'items' => [],
        ];
    }

    /**
     * An invoice as the save_after observer sees it while the transaction is open: no created_at
     * read back yet, item ids still null, totals as PHP floats from the total collectors.
     */
    public static function inFlightInvoice(): array
    {
        return [
            'entity_id' => 3450,
            'increment_id' => '000003450',
            'order_id' => '4410',
            'store_id' => 1,
            'state' => 1,
            'grand_total' => 0.1 + 0.2 + 4.5,
            'base_grand_total' => 0.1 + 0.2 + 4.5,
            'subtotal' => 0.1 + 0.2,
            'base_subtotal' => 0.1 + 0.2,
            'tax_amount' => 0.0,
            'base_tax_amount' => 0.0,
            'shipping_amount' => 4.5,
            'base_shipping_amount' => 4.5,
            'discount_amount' => -0.0,
            'base_discount_amount' => null,
            'total_qty' => 3.0,
            'items' => [
                ['entity_id' => null, 'order_item_id' => 9101, 'sku' => 'TOTE-CANVAS', 'name' => 'Canvas Tote',
                    'qty' => 3.0, 'price' => 0.1, 'base_price' => 0.1, 'row_total' => 0.1 * 3,
                    'base_row_total' => 0.1 * 3],
            ],
        ];
    }

    /** A B2B customer with two addresses; the row carries secrets the snapshot must drop. */
    public static function b2bCustomer(): array
    {
        return [
            'entity_id' => '5120',
            'website_id' => '1',
            'store_id' => '4',
            'group_id' => '2',
            'email' => 'accounts@atelier-nord.example',
            'firstname' => 'Ines',
            'lastname' => 'Martel',
            'middlename' => null,
            'prefix' => null,
            'suffix' => null,
            'taxvat' => 'FR40123456824',
            'created_in' => 'France Store View',
            'created_at' => '2024-10-01 09:12:44',
            'updated_at' => '2025-04-15 11:00:00',
            'default_billing' => '871',
            'default_shipping' => '872',
            'password_hash' => 'e3b0c44298fc1c149afbf4c8996fb924:0123456789abcdef:1',
            'rp_token' => 'd0c5f1e7a9b3',
            'rp_token_created_at' => '2025-04-15 10:59:00',
            'confirmation' => null,
            'failures_num' => '0',
            'addresses' => [
                ['entity_id' => '871', 'parent_id' => '5120', 'firstname' => 'Ines', 'lastname' => 'Martel',
                    'company' => 'Atelier Nord SAS', 'street' => "7 quai de la Fosse\nBâtiment C", 'city' => 'Nantes',
                    'region' => 'Loire-Atlantique', 'region_id' => '226', 'region_code' => '44', 'postcode' => '44000',
                    'country_id' => 'FR', 'telephone' => '+33 2 00 00 00 00', 'vat_id' => 'FR40123456824'],
                ['entity_id' => '872', 'parent_id' => '5120', 'firstname' => 'Ines', 'lastname' => 'Martel',
                    'company' => 'Atelier Nord SAS', 'street' => '12 rue du Port', 'city' => 'Saint-Nazaire',
                    'region' => 'Loire-Atlantique', 'region_id' => '226', 'region_code' => '44', 'postcode' => '44600',
                    'country_id' => 'FR', 'telephone' => '+33 2 00 00 00 01', 'vat_id' => null],
            ],
        ];
    }

    /** @return array<string, array<string, mixed>> */
    public static function products(): array
    {
        return [
            'simple' => ['entity_id' => '310', 'sku' => 'TOTE-CANVAS', 'name' => 'Canvas Tote', 'type_id' => 'simple',
                'price' => '15.000000', 'status' => '1', 'tax_class_id' => '2', 'attribute_set_id' => '4',
                'visibility' => '4', 'weight' => '0.4500', 'created_at' => '2024-01-10 12:00:00',
                'updated_at' => '2025-04-01 08:30:00', 'store_id' => '0', 'cost' => '6.2000'],
            'virtual' => ['entity_id' => '611', 'sku' => 'SVC-ENGRAVING', 'name' => 'Engraving service',
                'type_id' => 'virtual', 'price' => '7.5000', 'status' => '1', 'tax_class_id' => '2',
                'store_id' => '1'],
            'grouped' => ['entity_id' => '700', 'sku' => 'SET-KITCHEN', 'name' => 'Kitchen Set', 'type_id' => 'grouped',
                'status' => '2', 'tax_class_id' => null, 'store_id' => '0'],
            'stocked' => ['entity_id' => '312', 'sku' => 'MUG-ENAMEL', 'name' => 'Enamel Mug', 'type_id' => 'simple',
                'price' => '9.0000', 'status' => '1', 'tax_class_id' => '2', 'store_id' => '0', 'cost' => '3.2500',
                'stock_item' => ['manage_stock' => '1', 'qty' => '40.0000', 'is_in_stock' => true]],
            'stock-unreadable' => ['entity_id' => '313', 'sku' => 'MUG-SECONDS', 'name' => 'Enamel Mug (seconds)',
                'type_id' => 'simple', 'status' => '1', 'tax_class_id' => '2', 'store_id' => '0', 'cost' => 'n/a',
                'stock_item' => ['manage_stock' => 'maybe', 'qty' => [], 'is_in_stock' => 0]],
            'no-tax-class' => ['entity_id' => '701', 'sku' => 'GIFT-CARD-PAPER', 'name' => 'Paper gift voucher',
                'type_id' => 'simple', 'price' => '25.0000', 'status' => '1', 'tax_class_id' => '', 'store_id' => '0'],
        ];
    }
}
