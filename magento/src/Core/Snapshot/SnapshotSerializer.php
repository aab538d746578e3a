<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Snapshot;

use DateTimeImmutable;
use DateTimeZone;
use InvalidArgumentException;

/**
 * Builds the payloads of schemas/events/*.schema.json from plain Magento data.
 *
 * Inputs are the arrays Magento models hold (getData()), so this class needs no Magento types:
 *  - invoice / credit memo: the sales_invoice / sales_creditmemo row plus 'items' (list of item rows);
 *  - order: the sales_order row plus 'items' (order item rows, each optionally with 'is_dummy'
 *    and 'tax_class', the product tax class name), 'billing_address' and 'shipping_address'
 *    (sales_order_address rows; shipping may be null), 'payment' (the sales_order_payment row),
 *    and optionally 'applied_taxes' / 'item_applied_taxes' (Magento's applied taxes in REST shape,
 *    sent as the order's extension_attributes) and 'tax_config' (the store's tax settings);
 *  - customer: the customer row plus 'addresses' (address rows, each optionally with 'region_code');
 *  - product: the product data in one store scope.
 *
 * Only known fields are copied (an allow-list): customer rows carry password hashes and tokens,
 * payment rows carry card details, and none of that may leave the store. Money becomes decimal
 * strings; Magento's signs are kept as stored (header discount negative, item discount positive).
 */
final class SnapshotSerializer
{
    /** Header totals the contract requires; a missing one means zero. */
    private const HEADER_MONEY_REQUIRED = [
        'grand_total', 'base_grand_total', 'subtotal', 'base_subtotal', 'tax_amount', 'base_tax_amount',
        'shipping_amount', 'base_shipping_amount', 'discount_amount', 'base_discount_amount',
    ];

    private const HEADER_MONEY_OPTIONAL = [
        'subtotal_incl_tax', 'base_subtotal_incl_tax', 'shipping_tax_amount', 'base_shipping_tax_amount',
        'shipping_incl_tax', 'base_shipping_incl_tax', 'discount_tax_compensation_amount',
        'base_discount_tax_compensation_amount', 'shipping_discount_tax_compensation_amount',
        'base_shipping_discount_tax_compensation_amnt', 'base_total_refunded',
    ];

    private const CREDITMEMO_MONEY = [
        'adjustment', 'base_adjustment', 'adjustment_positive', 'base_adjustment_positive',
        'adjustment_negative', 'base_adjustment_negative',
    ];

    private const CURRENCY_CODES = [
        'base_currency_code', 'order_currency_code', 'global_currency_code', 'store_currency_code',
    ];

    private const RATES = ['base_to_order_rate', 'base_to_global_rate', 'store_to_base_rate', 'store_to_order_rate'];

    private const ITEM_MONEY_OPTIONAL = [
        'price_incl_tax', 'base_price_incl_tax', 'row_total', 'base_row_total', 'row_total_incl_tax',
        'base_row_total_incl_tax', 'discount_amount', 'base_discount_amount', 'tax_amount', 'base_tax_amount',
        'discount_tax_compensation_amount', 'base_discount_tax_compensation_amount', 'base_cost',
    ];

    private const ADDRESS_STRINGS = [
        'address_type', 'company', 'postcode', 'vat_id', 'telephone', 'email',
    ];

    /** @return array{invoice: array<string, mixed>, order: array<string, mixed>} */
    public function invoiceCreated(array $invoice, array $order, DateTimeImmutable $occurredAt): array
    {
        return [
            'invoice' => $this->invoice($invoice, $order, $occurredAt),
            'order' => $this->order($order),
        ];
    }

    /**
     * @return array{invoice: array<string, mixed>, order: array<string, mixed>, payment: array<string, mixed>}
     */
    public function invoicePaid(array $invoice, array $order, DateTimeImmutable $paidAt): array
    {
        $document = $this->invoice($invoice, $order, $paidAt);
        if ($document['state'] !== 2) {
            throw new SnapshotException('invoice ' . $document['entity_id'] . ' is not paid (state '
                . $document['state'] . ')');
        }
        $orderContext = $this->order($order);
        $transactionId = $this->string($invoice['transaction_id'] ?? null);
        return [
            'invoice' => $document,
            'order' => $orderContext,
            // What was captured: the amount in the order currency (named), and the base amount
            // Magento recorded for the capture (the payment's base amount, at the rate Magento
            // used when it captured).
            'payment' => [
                'method' => $orderContext['payment']['method'],
                'currency' => $document['order_currency_code'],
                'amount_paid' => $document['grand_total'],
                'base_amount_paid' => $document['base_grand_total'],
                'transaction_id' => $transactionId,
                'paid_at' => self::rfc3339($paidAt),
            ],
        ];
    }

    /** @return array{creditmemo: array<string, mixed>, order: array<string, mixed>} */
    /**
     * invoice.canceled: the invoice in state 3 and the state it left, 1 (canceled before capture)
     * or 2 (voided after capture).
     *
     * @return array<string, mixed>
     */
    public function invoiceCanceled(
        array $invoice,
        array $order,
        int $previousState,
        DateTimeImmutable $canceledAt
    ): array {
        $document = $this->invoice($invoice, $order, $canceledAt);
        if ($document['state'] !== 3) {
            throw new SnapshotException('invoice ' . $document['entity_id'] . ' is not canceled (state '
                . $document['state'] . ')');
        }
        if ($previousState !== 1 && $previousState !== 2) {
            throw new SnapshotException('invoice ' . $document['entity_id'] . ' was canceled from state '
                . $previousState . ', expected 1 (open) or 2 (paid)');
        }
        return [
            'invoice' => $document,
            'order' => $this->order($order),
            'previous_state' => $previousState,
            'canceled_at' => self::rfc3339($canceledAt),
        ];
    }

    /**
     * creditmemo.refunded / creditmemo.canceled: a credit memo that was pending (state 1) in its
     * new state, 2 refunded or 3 canceled.
     *
     * @return array<string, mixed>
     */
    public function creditmemoStateChanged(array $creditmemo, array $order, DateTimeImmutable $changedAt): array
    {
        $payload = $this->creditmemoCreated($creditmemo, $order, $changedAt);
        $state = $payload['creditmemo']['state'];
        if ($state !== 2 && $state !== 3) {
            throw new SnapshotException('credit memo ' . $payload['creditmemo']['entity_id']
                . ' is neither refunded nor canceled (state ' . $state . ')');
        }
        $payload['previous_state'] = 1;
        $payload['changed_at'] = self::rfc3339($changedAt);
        return $payload;
    }

    public function creditmemoCreated(array $creditmemo, array $order, DateTimeImmutable $occurredAt): array
    {
        $document = $this->header($creditmemo, $order, $occurredAt);
        foreach (self::CREDITMEMO_MONEY as $field) {
            $this->putMoney($document, $field, $creditmemo[$field] ?? null);
        }
        $document['invoice_id'] = $this->idOrNull($creditmemo['invoice_id'] ?? null);
        if (isset($creditmemo['creditmemo_status']) && $creditmemo['creditmemo_status'] !== '') {
            $document['creditmemo_status'] = (int) $creditmemo['creditmemo_status'];
        }
        $document['items'] = $this->items($creditmemo['items'] ?? [], $order, false);
        return ['creditmemo' => $document, 'order' => $this->order($order)];
    }

    /** @return array{customer: array<string, mixed>} */
    public function customerSaved(array $customer): array
    {
        $id = $this->requiredId($customer['entity_id'] ?? $customer['id'] ?? null, 'customer id');
        $defaultBilling = $this->idOrNull($customer['default_billing'] ?? null);
        $defaultShipping = $this->idOrNull($customer['default_shipping'] ?? null);
        $out = [
            'id' => $id,
            'email' => trim((string) ($customer['email'] ?? '')),
            'firstname' => (string) ($customer['firstname'] ?? ''),
            'lastname' => (string) ($customer['lastname'] ?? ''),
            'group_id' => (int) ($customer['group_id'] ?? 0),
            'website_id' => (int) ($customer['website_id'] ?? 0),
        ];
        foreach (['middlename', 'prefix', 'suffix', 'created_in', 'taxvat'] as $field) {
            $this->putString($out, $field, $customer[$field] ?? null);
        }
        if (isset($customer['store_id']) && $customer['store_id'] !== '') {
            $out['store_id'] = (int) $customer['store_id'];
        }
        $this->putString($out, 'created_at', $customer['created_at'] ?? null);
        $this->putString($out, 'updated_at', $customer['updated_at'] ?? null);
        $out['default_billing'] = $defaultBilling === null ? null : (string) $defaultBilling;
        $out['default_shipping'] = $defaultShipping === null ? null : (string) $defaultShipping;
        $addresses = [];
        foreach ($customer['addresses'] ?? [] as $address) {
            $mapped = $this->address($address, true);
            $addressId = $mapped['id'] ?? null;
            $mapped['customer_id'] = $id;
            $mapped['default_billing'] = $addressId !== null && $addressId === $defaultBilling;
            $mapped['default_shipping'] = $addressId !== null && $addressId === $defaultShipping;
            $addresses[] = $mapped;
        }
        $out['addresses'] = $addresses;
        return ['customer' => $out];
    }

    /** @return array{product: array<string, mixed>} */
    public function productSaved(array $product): array
    {
        $type = (string) ($product['type_id'] ?? '');
        $out = [
            'id' => $this->requiredId($product['entity_id'] ?? $product['id'] ?? null, 'product id'),
            'sku' => (string) ($product['sku'] ?? ''),
            'name' => (string) ($product['name'] ?? ''),
            'type_id' => $type,
            'status' => (int) ($product['status'] ?? 2),
        ];
        $price = $this->money($product['price'] ?? null);
        if ($price !== null) {
            $out['price'] = $price;
        }
        $taxClass = $product['tax_class_id'] ?? null;
        if ($taxClass !== null && $taxClass !== '') {
            $out['tax_class_id'] = (int) $taxClass;
        } elseif ($type !== 'grouped') {
            // Magento leaves the attribute empty for "None"; the contract spells that 0.
            $out['tax_class_id'] = 0;
        }
        foreach (['attribute_set_id', 'visibility'] as $field) {
            if (isset($product[$field]) && $product[$field] !== '') {
                $out[$field] = (int) $product[$field];
            }
        }
        $weight = $this->number($product['weight'] ?? null);
        if ($weight !== null) {
            $out['weight'] = $weight;
        }
        $this->putString($out, 'created_at', $product['created_at'] ?? null);
        $this->putString($out, 'updated_at', $product['updated_at'] ?? null);
        // Read defensively: a cost that is not a number leaves the cost out, not the product.
        $cost = is_numeric($product['cost'] ?? null) ? $this->number($product['cost']) : null;
        if ($cost !== null) {
            $out['custom_attributes'] = [['attribute_code' => 'cost', 'value' => $cost]];
        }
        $stock = $this->stockItem($product['stock_item'] ?? null);
        if ($stock !== []) {
            $out['extension_attributes'] = ['stock_item' => $stock];
        }
        return ['product' => $out];
    }

    /**
     * The contract's stock_item: manage_stock and is_in_stock as booleans, qty as a decimal
     * string; a field that is absent or unreadable is left out.
     *
     * @return array<string, bool|string>
     */
    private function stockItem(mixed $stock): array
    {
        if (!is_array($stock)) {
            return [];
        }
        $out = [];
        foreach (['manage_stock', 'is_in_stock'] as $field) {
            $flag = $stock[$field] ?? null;
            if (is_bool($flag) || in_array($flag, [0, 1, '0', '1'], true)) {
                $out[$field] = (bool) (int) $flag;
            }
        }
        $qty = $stock['qty'] ?? null;
        if (is_numeric($qty)) {
            $out['qty'] = $this->number($qty);
        }
        return $out;
    }

    /** @return array<string, mixed> */
    private function invoice(array $invoice, array $order, DateTimeImmutable $occurredAt): array
    {
        $document = $this->header($invoice, $order, $occurredAt);
        if (isset($invoice['is_used_for_refund']) && $invoice['is_used_for_refund'] !== '') {
            $document['is_used_for_refund'] = (int) $invoice['is_used_for_refund'];
        }
        $document['items'] = $this->items($invoice['items'] ?? [], $order, true);
        if ($document['items'] === []) {
            throw new SnapshotException('invoice ' . $document['entity_id'] . ' has no invoiced lines');
        }
        return $document;
    }

    /**
     * Fields shared by invoices and credit memos. Currency fields missing on the document are
     * taken from the order (the same values Magento copied at creation).
     *
     * @return array<string, mixed>
     */
    private function header(array $doc, array $order, DateTimeImmutable $occurredAt): array
    {
        $out = [
            'entity_id' => $this->requiredId($doc['entity_id'] ?? null, 'document entity_id'),
            'increment_id' => (string) ($doc['increment_id'] ?? ''),
            'order_id' => $this->requiredId($doc['order_id'] ?? $order['entity_id'] ?? null, 'order_id'),
            'store_id' => (int) ($doc['store_id'] ?? $order['store_id'] ?? 0),
            'state' => (int) ($doc['state'] ?? 0),
            // A document saved in this very transaction may not have its created_at read back yet.
            'created_at' => $this->string($doc['created_at'] ?? null) ?? self::magentoTime($occurredAt),
        ];
        $this->putString($out, 'updated_at', $doc['updated_at'] ?? null);
        $this->putString($out, 'transaction_id', $doc['transaction_id'] ?? null);
        $this->currency($out, $doc, $order);
        foreach (self::HEADER_MONEY_REQUIRED as $field) {
            $out[$field] = $this->money($doc[$field] ?? null) ?? '0.00';
        }
        foreach (self::HEADER_MONEY_OPTIONAL as $field) {
            $this->putMoney($out, $field, $doc[$field] ?? null);
        }
        $this->putString($out, 'discount_description', $doc['discount_description'] ?? null);
        $qty = $this->number($doc['total_qty'] ?? null);
        if ($qty !== null) {
            $out['total_qty'] = $qty;
        }
        foreach (['billing_address_id', 'shipping_address_id'] as $field) {
            $id = $this->idOrNull($doc[$field] ?? null);
            if ($id !== null) {
                $out[$field] = $id;
            }
        }
        return $out;
    }

    /** @param array<string, mixed> $out */
    private function currency(array &$out, array $doc, array $order): void
    {
        foreach (self::CURRENCY_CODES as $field) {
            $code = $this->string($doc[$field] ?? null) ?? $this->string($order[$field] ?? null);
            if ($code !== null) {
                $out[$field] = strtoupper($code);
            }
        }
        foreach (self::RATES as $field) {
            $rate = $this->number($doc[$field] ?? null) ?? $this->number($order[$field] ?? null);
            if ($rate !== null) {
                $out[$field] = $rate;
            }
        }
    }

    /**
     * Document lines, each enriched from its order line with product_type, parent_item_id,
     * tax_percent and is_dummy (Magento keeps them only on the order item). Invoice lines with a
     * zero quantity carry nothing and are left out; credit memos keep them.
     *
     * @return list<array<string, mixed>>
     */
    private function items(array $items, array $order, bool $dropEmpty): array
    {
        $orderItems = [];
        foreach ($order['items'] ?? [] as $orderItem) {
            if (isset($orderItem['item_id'])) {
                $orderItems[(int) $orderItem['item_id']] = $orderItem;
            }
        }
        $out = [];
        foreach ($items as $item) {
            $qty = $this->number($item['qty'] ?? null) ?? '0';
            if ($dropEmpty && !Decimal::isPositive($qty)) {
                continue;
            }
            $orderItemId = $this->requiredId($item['order_item_id'] ?? null, 'item order_item_id');
            $line = [
                'order_item_id' => $orderItemId,
                'sku' => (string) ($item['sku'] ?? ''),
                'name' => (string) ($item['name'] ?? ''),
                'qty' => $qty,
                'price' => $this->money($item['price'] ?? null) ?? '0.00',
                'base_price' => $this->money($item['base_price'] ?? null) ?? '0.00',
            ];
            foreach (['entity_id', 'parent_id', 'product_id'] as $field) {
                $id = $this->idOrNull($item[$field] ?? null);
                if ($id !== null) {
                    $line[$field] = $id;
                }
            }
            foreach (self::ITEM_MONEY_OPTIONAL as $field) {
                $this->putMoney($line, $field, $item[$field] ?? null);
            }
            $orderItem = $orderItems[$orderItemId] ?? null;
            if ($orderItem !== null) {
                $this->putString($line, 'product_type', $orderItem['product_type'] ?? null);
                $parent = $this->idOrNull($orderItem['parent_item_id'] ?? null);
                if ($parent !== null) {
                    $line['parent_item_id'] = $parent;
                }
                $percent = $this->number($orderItem['tax_percent'] ?? null);
                if ($percent !== null) {
                    $line['tax_percent'] = $percent;
                }
                if (isset($orderItem['is_dummy'])) {
                    $line['is_dummy'] = (bool) $orderItem['is_dummy'];
                }
            }
            $out[] = $line;
        }
        return $out;
    }

    /**
     * The order context: party identity, addresses, payment method and order lines.
     *
     * @return array<string, mixed>
     */
    public function order(array $order): array
    {
        $customerId = $this->idOrNull($order['customer_id'] ?? null);
        $isGuest = isset($order['customer_is_guest']) && $order['customer_is_guest'] !== ''
            ? (int) (bool) $order['customer_is_guest']
            : ($customerId === null ? 1 : 0);
        if ($isGuest === 0 && $customerId === null) {
            // The account was deleted after the order (Magento nulls customer_id): Ledger can only
            // key the party by e-mail now, which is what it does for guests.
            $isGuest = 1;
        }
        $billing = $order['billing_address'] ?? null;
        if (!is_array($billing)) {
            throw new SnapshotException('order ' . ($order['entity_id'] ?? '?') . ' has no billing address');
        }
        $email = trim((string) ($order['customer_email'] ?? ''));
        if ($email === '') {
            $email = trim((string) ($billing['email'] ?? ''));
        }
        $out = [
            'entity_id' => $this->requiredId($order['entity_id'] ?? null, 'order entity_id'),
            'increment_id' => (string) ($order['increment_id'] ?? ''),
            'store_id' => (int) ($order['store_id'] ?? 0),
        ];
        $this->putString($out, 'created_at', $order['created_at'] ?? null);
        $this->putString($out, 'state', $order['state'] ?? null);
        $this->putString($out, 'status', $order['status'] ?? null);
        $this->currency($out, $order, []);
        foreach (['grand_total', 'base_grand_total'] as $field) {
            $this->putMoney($out, $field, $order[$field] ?? null);
        }
        $out['customer_id'] = $isGuest === 1 ? null : $customerId;
        $out['customer_is_guest'] = $isGuest;
        $out['customer_email'] = $email;
        foreach (['customer_firstname', 'customer_lastname', 'customer_taxvat'] as $field) {
            $out[$field] = $this->string($order[$field] ?? null);
        }
        $groupId = $order['customer_group_id'] ?? null;
        $out['customer_group_id'] = $groupId === null || $groupId === '' ? null : (int) $groupId;
        $out['billing_address'] = $this->address($billing, false);
        $shipping = $order['shipping_address'] ?? null;
        $out['shipping_address'] = is_array($shipping) ? $this->address($shipping, false) : null;
        $payment = $order['payment'] ?? [];
        $method = $this->string($payment['method'] ?? null);
        if ($method === null) {
            throw new SnapshotException('order ' . $out['entity_id'] . ' has no payment method');
        }
        $out['payment'] = [
            'method' => $method,
            'po_number' => $this->string($payment['po_number'] ?? null),
            'last_trans_id' => $this->string($payment['last_trans_id'] ?? null),
        ];
        $items = [];
        foreach ($order['items'] ?? [] as $item) {
            $line = [
                'item_id' => $this->requiredId($item['item_id'] ?? null, 'order item_id'),
                'parent_item_id' => $this->idOrNull($item['parent_item_id'] ?? null),
                'product_id' => $this->idOrNull($item['product_id'] ?? null),
                'product_type' => (string) ($item['product_type'] ?? ''),
                'sku' => (string) ($item['sku'] ?? ''),
                'name' => $this->string($item['name'] ?? null),
                'qty_ordered' => $this->number($item['qty_ordered'] ?? null),
                'tax_percent' => $this->number($item['tax_percent'] ?? null),
            ];
            if (isset($item['is_virtual']) && $item['is_virtual'] !== '') {
                $line['is_virtual'] = (int) (bool) $item['is_virtual'];
            }
            if (isset($item['is_dummy'])) {
                $line['is_dummy'] = (bool) $item['is_dummy'];
            }
            $this->putString($line, 'tax_class', $item['tax_class'] ?? null);
            $items[] = $line;
        }
        $out['items'] = $items;
        $extension = [];
        foreach (['applied_taxes', 'item_applied_taxes'] as $field) {
            if (isset($order[$field]) && is_array($order[$field])) {
                $extension[$field] = $field === 'applied_taxes'
                    ? $this->appliedTaxes($order[$field])
                    : $this->itemAppliedTaxes($order[$field]);
            }
        }
        if ($extension !== []) {
            $out['extension_attributes'] = $extension;
        }
        $taxConfig = $this->taxConfig($order['tax_config'] ?? null);
        if ($taxConfig !== []) {
            $out['tax_config'] = $taxConfig;
        }
        $invoices = $this->orderInvoices($order['invoices'] ?? null);
        if ($invoices !== []) {
            $out['invoices'] = $invoices;
        }
        return $out;
    }

    /**
     * The order's invoices (contract order_context.invoices): entity_id, increment_id,
     * created_at, grand totals and state. Ledger links a credit memo without invoice_id
     * (Refund Offline from the order page) through them. They only add to the event, so an
     * entry without an id or a number is left out instead of failing it.
     *
     * @return list<array<string, mixed>>
     */
    private function orderInvoices(mixed $invoices): array
    {
        if (!is_array($invoices)) {
            return [];
        }
        $out = [];
        foreach ($invoices as $invoice) {
            if (!is_array($invoice)) {
                continue;
            }
            $id = $this->idOrNull($invoice['entity_id'] ?? null);
            $number = $this->string($invoice['increment_id'] ?? null);
            if ($id === null || $number === null) {
                continue;
            }
            $row = ['entity_id' => $id, 'increment_id' => $number];
            $this->putString($row, 'created_at', $invoice['created_at'] ?? null);
            $this->putMoney($row, 'grand_total', $invoice['grand_total'] ?? null);
            $this->putMoney($row, 'base_grand_total', $invoice['base_grand_total'] ?? null);
            $state = $invoice['state'] ?? null;
            if (is_numeric($state) && in_array((int) $state, [1, 2, 3], true)) {
                $row['state'] = (int) $state;
            }
            $out[] = $row;
        }
        return $out;
    }

    /**
     * Magento's applied taxes ({code, title, percent, amount, base_amount}). Tax details only add
     * to the event, so an entry that cannot be read (no code, a percent that is not a number
     * from 0 to 100) is left out instead of failing the event; an unreadable amount is omitted.
     *
     * @return list<array<string, mixed>>
     */
    private function appliedTaxes(array $taxes): array
    {
        $out = [];
        foreach ($taxes as $tax) {
            if (!is_array($tax)) {
                continue;
            }
            $code = $this->string($tax['code'] ?? null);
            $percent = $this->lenientNumber($tax['percent'] ?? null);
            if ($code === null || $percent === null || !self::isPercent($percent)) {
                continue;
            }
            $entry = ['code' => $code, 'title' => $this->string($tax['title'] ?? null), 'percent' => $percent];
            foreach (['amount', 'base_amount'] as $field) {
                $amount = $this->lenientMoney($tax[$field] ?? null);
                if ($amount !== null) {
                    $entry[$field] = $amount;
                }
            }
            $out[] = $entry;
        }
        return $out;
    }

    /**
     * Magento's per-line applied taxes ({type, item_id, associated_item_id, applied_taxes}); an
     * entry without a type is left out.
     *
     * @return list<array<string, mixed>>
     */
    private function itemAppliedTaxes(array $items): array
    {
        $out = [];
        foreach ($items as $item) {
            if (!is_array($item)) {
                continue;
            }
            $type = $this->string($item['type'] ?? null);
            if ($type === null) {
                continue;
            }
            $out[] = [
                'type' => $type,
                'item_id' => $this->idOrNull($item['item_id'] ?? null),
                'associated_item_id' => $this->idOrNull($item['associated_item_id'] ?? null),
                'applied_taxes' => $this->appliedTaxes(
                    is_array($item['applied_taxes'] ?? null) ? $item['applied_taxes'] : []
                ),
            ];
        }
        return $out;
    }

    /**
     * The store's tax settings (contract tax_config): based_on as one of Magento's three values,
     * the four switches as booleans; anything else is left out.
     *
     * @return array<string, string|bool>
     */
    private function taxConfig(mixed $config): array
    {
        if (!is_array($config)) {
            return [];
        }
        $out = [];
        $basedOn = $this->string($config['based_on'] ?? null);
        if (in_array($basedOn, ['shipping', 'billing', 'origin'], true)) {
            $out['based_on'] = $basedOn;
        }
        foreach (['price_includes_tax', 'shipping_includes_tax', 'apply_after_discount', 'discount_tax'] as $field) {
            if (is_bool($config[$field] ?? null)) {
                $out[$field] = $config[$field];
            }
        }
        return $out;
    }

    /** True for a plain decimal from 0 to 100, as the contract's percent. */
    private static function isPercent(string $decimal): bool
    {
        if ($decimal[0] === '-') {
            return false;
        }
        [$integer] = explode('.', $decimal);
        return strlen($integer) <= 2 || $decimal === '100';
    }

    private function lenientNumber(mixed $value): ?string
    {
        try {
            return Decimal::number($value);
        } catch (InvalidArgumentException) {
            return null;
        }
    }

    private function lenientMoney(mixed $value): ?string
    {
        try {
            return Decimal::money($value);
        } catch (InvalidArgumentException) {
            return null;
        }
    }

    /**
     * An order address (region is a name) or a customer address (region becomes Magento's
     * {region_code, region, region_id} object, as CustomerAddressInterface prints it).
     *
     * @return array<string, mixed>
     */
    private function address(array $address, bool $customerAddress): array
    {
        $out = [];
        $id = $this->idOrNull($address['entity_id'] ?? $address['id'] ?? null);
        if ($id !== null) {
            $out[$customerAddress ? 'id' : 'entity_id'] = $id;
        }
        if (!$customerAddress) {
            foreach (['customer_id', 'customer_address_id'] as $field) {
                $ref = $this->idOrNull($address[$field] ?? null);
                if ($ref !== null) {
                    $out[$field] = $ref;
                }
            }
        }
        $out['firstname'] = (string) ($address['firstname'] ?? '');
        $out['lastname'] = (string) ($address['lastname'] ?? '');
        $out['street'] = $this->street($address['street'] ?? null);
        $out['city'] = (string) ($address['city'] ?? '');
        $out['country_id'] = strtoupper((string) ($address['country_id'] ?? ''));
        $regionName = $this->string($address['region'] ?? null);
        $regionId = isset($address['region_id']) && $address['region_id'] !== '' ? (int) $address['region_id'] : null;
        if ($customerAddress) {
            $out['region'] = [
                'region_code' => $this->string($address['region_code'] ?? null),
                'region' => $regionName,
                'region_id' => $regionId,
            ];
        } else {
            $out['region'] = $regionName;
        }
        if ($regionId !== null) {
            $out['region_id'] = $regionId;
        }
        foreach (self::ADDRESS_STRINGS as $field) {
            $this->putString($out, $field, $address[$field] ?? null);
        }
        return $out;
    }

    /** @return list<string> Magento stores street lines joined by "\n". */
    private function street(mixed $street): array
    {
        $lines = is_array($street) ? $street : explode("\n", (string) $street);
        $out = [];
        foreach ($lines as $line) {
            $line = trim((string) $line);
            if ($line !== '') {
                $out[] = $line;
            }
        }
        return $out;
    }

    private function money(mixed $value): ?string
    {
        try {
            return Decimal::money($value);
        } catch (InvalidArgumentException $e) {
            throw new SnapshotException($e->getMessage(), 0, $e);
        }
    }

    private function number(mixed $value): ?string
    {
        try {
            return Decimal::number($value);
        } catch (InvalidArgumentException $e) {
            throw new SnapshotException($e->getMessage(), 0, $e);
        }
    }

    /** @param array<string, mixed> $out */
    private function putMoney(array &$out, string $field, mixed $value): void
    {
        $money = $this->money($value);
        if ($money !== null) {
            $out[$field] = $money;
        }
    }

    /** @param array<string, mixed> $out */
    private function putString(array &$out, string $field, mixed $value): void
    {
        $text = $this->string($value);
        if ($text !== null) {
            $out[$field] = $text;
        }
    }

    private function string(mixed $value): ?string
    {
        if ($value === null || is_array($value) || is_object($value)) {
            return null;
        }
        $text = trim((string) $value);
        return $text === '' ? null : $text;
    }

    private function idOrNull(mixed $value): ?int
    {
        if ($value === null || $value === '' || is_array($value) || is_object($value)) {
            return null;
        }
        $id = (int) $value;
        return $id > 0 ? $id : null;
    }

    private function requiredId(mixed $value, string $what): int
    {
        $id = $this->idOrNull($value);
        if ($id === null) {
            throw new SnapshotException($what . ' is missing');
        }
        return $id;
    }

    /** RFC 3339 in UTC with a "Z" zone, as the envelope's occurred_at and paid_at. */
    public static function rfc3339(DateTimeImmutable $time): string
    {
        return $time->setTimezone(new DateTimeZone('UTC'))->format('Y-m-d\TH:i:s\Z');
    }

    /** Magento's own database time format (UTC, no zone). */
    public static function magentoTime(DateTimeImmutable $time): string
    {
        return $time->setTimezone(new DateTimeZone('UTC'))->format('Y-m-d H:i:s');
    }
}
