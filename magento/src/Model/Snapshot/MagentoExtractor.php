<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Snapshot;

use Ledger\SageSync\Core\Snapshot\QuoteAppliedTaxes;
use Magento\Catalog\Model\Product;
use Magento\Catalog\Model\ResourceModel\Product as ProductResource;
use Magento\Customer\Model\Address;
use Magento\Customer\Model\Customer;
use Magento\Framework\App\Config\ScopeConfigInterface;
use Magento\Framework\DataObject;
use Magento\Sales\Model\Order;
use Magento\Sales\Model\Order\Creditmemo;
use Magento\Sales\Model\Order\Invoice;
use Magento\Store\Model\ScopeInterface;
use Magento\Tax\Api\OrderTaxManagementInterface;
use Magento\Tax\Api\TaxClassRepositoryInterface;
use Psr\Log\LoggerInterface;
use Throwable;

/**
 * Reads Magento models into the plain arrays the core serializer takes (see SnapshotSerializer).
 * Reads only: in-memory data of the document being saved, plus its order, which Magento has
 * already loaded for the save. The serializer decides what leaves the store.
 *
 * For the order it also reads three tax facts Magento keeps elsewhere: each line's product tax
 * class name, the applied tax rates (per line and for shipping) and the store's tax settings.
 * They only add to the event: when one cannot be read it is left out and a warning is logged.
 */
class MagentoExtractor
{
    /** Contract tax_config key => Magento config path (Stores > Configuration > Sales > Tax). */
    public const TAX_CONFIG_PATHS = [
        'based_on' => 'tax/calculation/based_on',
        'price_includes_tax' => 'tax/calculation/price_includes_tax',
        'shipping_includes_tax' => 'tax/calculation/shipping_includes_tax',
        'apply_after_discount' => 'tax/calculation/apply_after_discount',
        'discount_tax' => 'tax/calculation/discount_tax',
    ];

    /** @var array<int, ?string> tax class id => name, for the lifetime of this (shared) instance */
    private array $classNames = [];

    public function __construct(
        private ProductResource $productResource,
        private TaxClassRepositoryInterface $taxClasses,
        private OrderTaxManagementInterface $orderTaxes,
        private ScopeConfigInterface $scopeConfig,
        private LoggerInterface $logger,
    ) {
    }

    public function invoice(Invoice $invoice): array
    {
        $data = $this->scalars($invoice);
        $data['items'] = $this->rows($invoice->getAllItems());
        return $data;
    }

    public function creditmemo(Creditmemo $creditmemo): array
    {
        $data = $this->scalars($creditmemo);
        $data['items'] = $this->rows($creditmemo->getAllItems());
        return $data;
    }

    public function order(Order $order): array
    {
        $data = $this->scalars($order);
        unset($data['applied_taxes'], $data['item_applied_taxes'], $data['tax_config'], $data['invoices']);
        $data['items'] = [];
        foreach ($order->getAllItems() as $item) {
            $row = $this->scalars($item);
            // Magento's own answer to "which line of a composite product carries the amounts".
            $row['is_dummy'] = (bool) $item->isDummy();
            unset($row['tax_class']);
            $data['items'][] = $row;
        }
        $storeId = (int) $order->getStoreId();
        foreach ($this->taxClassNames($data['items'], $storeId) as $index => $name) {
            $data['items'][$index]['tax_class'] = $name;
        }
        $billing = $order->getBillingAddress();
        $shipping = $order->getShippingAddress();
        $payment = $order->getPayment();
        $data['billing_address'] = $billing === null ? null : $this->scalars($billing);
        $data['shipping_address'] = $shipping === null ? null : $this->scalars($shipping);
        $data['payment'] = $payment === null ? [] : $this->scalars($payment);
        $applied = $this->appliedTaxes($order, $data['items']);
        if ($applied !== null) {
            $data['applied_taxes'] = $applied['applied_taxes'];
            $data['item_applied_taxes'] = $applied['item_applied_taxes'];
        }
        $taxConfig = $this->taxConfig($storeId, (string) ($data['entity_id'] ?? '?'));
        if ($taxConfig !== []) {
            $data['tax_config'] = $taxConfig;
        }
        // The order's invoices: a credit memo refunded offline from the order page has no
        // invoice_id, and Ledger links it through these.
        $invoices = [];
        foreach ($order->getInvoiceCollection() as $invoice) {
            $invoices[] = array_intersect_key(
                $this->scalars($invoice),
                array_flip(['entity_id', 'increment_id', 'created_at', 'grand_total', 'base_grand_total', 'state'])
            );
        }
        if ($invoices !== []) {
            $data['invoices'] = $invoices;
        }
        return $data;
    }

    /**
     * The product tax class name of each order line (index in $items => name), read in the
     * order's store. A configurable parent line takes its child's product: Magento taxes that line
     * with the chosen child's class (ConfigurableProduct's CommonTaxCollector plugin). Lines whose
     * product is gone or has no class ("None") get none.
     *
     * @param list<array<string, mixed>> $items order item rows
     * @return array<int, string>
     */
    private function taxClassNames(array $items, int $storeId): array
    {
        $childProduct = [];
        foreach ($items as $row) {
            $parent = (int) ($row['parent_item_id'] ?? 0);
            if ($parent > 0 && !isset($childProduct[$parent])) {
                $childProduct[$parent] = (int) ($row['product_id'] ?? 0);
            }
        }
        $names = [];
        $classIds = [];
        foreach ($items as $index => $row) {
            $productId = (int) ($row['product_id'] ?? 0);
            $child = $childProduct[(int) ($row['item_id'] ?? 0)] ?? 0;
            if (($row['product_type'] ?? '') === 'configurable' && $child > 0) {
                $productId = $child;
            }
            if ($productId <= 0) {
                continue;
            }
            try {
                if (!array_key_exists($productId, $classIds)) {
                    $raw = $this->productResource->getAttributeRawValue($productId, 'tax_class_id', $storeId);
                    $classIds[$productId] = is_scalar($raw) ? (int) $raw : 0;
                }
                $name = $this->className($classIds[$productId]);
            } catch (Throwable $e) {
                $this->logger->warning('Ledger Sage Sync: could not read the tax class of product ' . $productId
                    . ' (order item ' . ($row['item_id'] ?? '?') . '); the event is sent without it', [
                        'exception' => $e,
                    ]);
                continue;
            }
            if ($name !== null) {
                $names[$index] = $name;
            }
        }
        return $names;
    }

    private function className(int $classId): ?string
    {
        if ($classId <= 0) {
            return null;
        }
        if (!array_key_exists($classId, $this->classNames)) {
            try {
                $name = trim((string) $this->taxClasses->get($classId)->getClassName());
            } catch (\Magento\Framework\Exception\NoSuchEntityException) {
                $name = '';
            }
            $this->classNames[$classId] = $name === '' ? null : $name;
        }
        return $this->classNames[$classId];
    }

    /**
     * Magento's applied taxes in REST shape, or null when they cannot be read. Once the order is
     * saved they come from sales_order_tax (OrderTaxManagementInterface::getOrderTaxDetails, what
     * REST prints). An order still being placed has no such rows yet (Magento writes them after the
     * order save, and an invoice captured at checkout is saved inside it): then they are converted
     * from the quote conversion Magento holds in the order's extension attributes (none when a line
     * cannot be matched to an order item yet).
     *
     * @param list<array<string, mixed>> $items order item rows
     * @return array{applied_taxes: list<array<string, mixed>>, item_applied_taxes: list<array<string, mixed>>}|null
     */
    private function appliedTaxes(Order $order, array $items): ?array
    {
        try {
            $extension = $order->getExtensionAttributes();
            if (self::field($extension, 'converting_from_quote') && !$order->getAppliedTaxIsSaved()) {
                $orderItemIds = [];
                foreach ($items as $row) {
                    if (isset($row['quote_item_id'], $row['item_id'])) {
                        $orderItemIds[(string) $row['quote_item_id']] = $row['item_id'];
                    }
                }
                $quoteItems = [];
                foreach (self::listOf(self::field($extension, 'item_applied_taxes')) as $item) {
                    $quoteItems[] = [
                        'type' => self::field($item, 'type'),
                        'item_id' => self::field($item, 'item_id'),
                        'associated_item_id' => self::field($item, 'associated_item_id'),
                        'applied_taxes' => array_map(
                            self::quoteGroup(...),
                            self::listOf(self::field($item, 'applied_taxes'))
                        ),
                    ];
                }
                return QuoteAppliedTaxes::convert($quoteItems, $orderItemIds);
            }
            $orderId = (int) $order->getId();
            if ($orderId <= 0) {
                return null;
            }
            $details = $this->orderTaxes->getOrderTaxDetails($orderId);
            $lines = [];
            foreach (self::listOf($details->getItems()) as $item) {
                $lines[] = [
                    'type' => self::field($item, 'type'),
                    'item_id' => self::field($item, 'item_id'),
                    'associated_item_id' => self::field($item, 'associated_item_id'),
                    'applied_taxes' => array_map(
                        self::appliedTax(...),
                        self::listOf(self::field($item, 'applied_taxes'))
                    ),
                ];
            }
            return [
                'applied_taxes' => array_map(self::appliedTax(...), self::listOf($details->getAppliedTaxes())),
                'item_applied_taxes' => $lines,
            ];
        } catch (Throwable $e) {
            $this->logger->warning('Ledger Sage Sync: could not read the applied taxes of order '
                . (string) $order->getId() . '; the event is sent without them', ['exception' => $e]);
            return null;
        }
    }

    /** @param mixed $tax an OrderTaxDetailsAppliedTaxInterface (or its array form) */
    private static function appliedTax(mixed $tax): array
    {
        $row = [];
        foreach (['code', 'title', 'percent', 'amount', 'base_amount'] as $key) {
            $row[$key] = self::field($tax, $key);
        }
        return $row;
    }

    /** @param mixed $group an applied-tax group of the quote conversion, its rates in its extension attributes */
    private static function quoteGroup(mixed $group): array
    {
        $row = self::appliedTax($group);
        $row['rates'] = [];
        $extension = self::field($group, 'extension_attributes');
        foreach (self::listOf(self::field($extension, 'rates')) as $rate) {
            $row['rates'][] = [
                'code' => self::field($rate, 'code'),
                'title' => self::field($rate, 'title'),
                'percent' => self::field($rate, 'percent'),
            ];
        }
        return $row;
    }

    /**
     * A field of a Magento data object through its getter (getItemId() for item_id), or of its
     * array form; null when there is neither.
     */
    private static function field(mixed $source, string $key): mixed
    {
        if (is_array($source)) {
            return $source[$key] ?? null;
        }
        if (!is_object($source)) {
            return null;
        }
        $getter = 'get' . str_replace('_', '', ucwords($key, '_'));
        if (method_exists($source, $getter) || method_exists($source, '__call')) {
            return $source->$getter();
        }
        return null;
    }

    /** @return list<mixed> */
    private static function listOf(mixed $value): array
    {
        return is_array($value) ? array_values($value) : [];
    }

    /**
     * The order store's tax settings, typed as the contract's tax_config; a value that is not set
     * or not one Magento offers is left out.
     *
     * @return array<string, string|bool>
     */
    private function taxConfig(int $storeId, string $orderId): array
    {
        $out = [];
        try {
            foreach (self::TAX_CONFIG_PATHS as $key => $path) {
                $value = $this->scopeConfig->getValue($path, ScopeInterface::SCOPE_STORE, $storeId);
                if ($value === null || is_array($value) || is_object($value)) {
                    continue;
                }
                if ($key === 'based_on') {
                    $value = trim((string) $value);
                    if (in_array($value, ['shipping', 'billing', 'origin'], true)) {
                        $out[$key] = $value;
                    }
                } elseif (is_bool($value) || in_array((string) $value, ['0', '1'], true)) {
                    $out[$key] = (bool) $value;
                }
            }
        } catch (Throwable $e) {
            $this->logger->warning('Ledger Sage Sync: could not read the tax settings of store ' . $storeId
                . ' (order ' . $orderId . '); the event is sent without them', ['exception' => $e]);
            return [];
        }
        return $out;
    }

    /**
     * @param Address|null $current the address being saved right now, newer than a cached address book
     */
    public function customer(Customer $customer, ?Address $current = null): array
    {
        $data = $this->scalars($customer);
        $addresses = [];
        foreach ($customer->getAddresses() as $address) {
            $addresses[(int) $address->getId()] = $this->address($address);
        }
        if ($current !== null && $current->getId()) {
            $addresses[(int) $current->getId()] = $this->address($current);
        }
        $data['addresses'] = array_values($addresses);
        return $data;
    }

    public function product(Product $product): array
    {
        $data = $this->scalars($product);
        $stock = $this->stockItem($product);
        if ($stock !== null) {
            $data['stock_item'] = $stock;
        }
        return $data;
    }

    /**
     * The product's stock facts (manage_stock, qty, is_in_stock) from its stock item extension
     * attribute, or null when Magento did not load one or it cannot be read.
     *
     * @return array<string, mixed>|null
     */
    private function stockItem(Product $product): ?array
    {
        try {
            $item = self::field($product->getExtensionAttributes(), 'stock_item');
            if ($item === null) {
                return null;
            }
            $out = [];
            foreach (['manage_stock', 'qty', 'is_in_stock'] as $key) {
                $value = self::field($item, $key);
                if ($value !== null && is_scalar($value)) {
                    $out[$key] = $value;
                }
            }
            return $out === [] ? null : $out;
        } catch (Throwable $e) {
            $this->logger->warning('Ledger Sage Sync: could not read the stock of product ' . $product->getId()
                . ': ' . $e->getMessage());
            return null;
        }
    }

    private function address(Address $address): array
    {
        $row = $this->scalars($address);
        $row['region_code'] = $address->getRegionCode();
        return $row;
    }

    /** @return list<array<string, mixed>> */
    private function rows(iterable $items): array
    {
        $rows = [];
        foreach ($items as $item) {
            $rows[] = $this->scalars($item);
        }
        return $rows;
    }

    /**
     * The model's own fields; related objects (the order on an invoice, collections, extension
     * attributes) are left out. Street stays as stored ("line 1\nline 2") or as an array.
     *
     * @return array<string, mixed>
     */
    private function scalars(DataObject $object): array
    {
        $out = [];
        foreach ($object->getData() as $key => $value) {
            if ($value === null || is_scalar($value) || ($key === 'street' && is_array($value))) {
                $out[$key] = $value;
            }
        }
        return $out;
    }
}
