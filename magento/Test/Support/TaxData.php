<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Ledger\SageSync\Model\Snapshot\MagentoExtractor;
use Ledger\SageSync\Test\Fixture\Documents;
use Magento\Catalog\Model\ResourceModel\Product as ProductResource;
use Magento\Framework\App\Config\ScopeConfigInterface;
use Magento\Framework\DataObject;
use Magento\Framework\Exception\NoSuchEntityException;
use Magento\Tax\Api\OrderTaxManagementInterface;
use Magento\Tax\Api\TaxClassRepositoryInterface;
use Throwable;

/**
 * Where Magento keeps an order's tax facts, from arrays: product tax_class_id per product
 * (the product resource), tax class names (TaxClassRepositoryInterface), the saved order tax rows
 * (OrderTaxManagementInterface, answered as Magento's data objects) and store-scoped config
 * (ScopeConfigInterface). Records what was asked; each source can be made to fail.
 */
final class TaxData implements TaxClassRepositoryInterface, OrderTaxManagementInterface, ScopeConfigInterface
{
    public ProductResource $products;
    public ArrayLogger $logger;

    /** @var array<int, string> tax class id => name */
    public array $classes = [2 => 'Taxable Goods', 5 => 'Zero Rated', 6 => 'Exempt'];

    /** @var array<int, array{applied_taxes: list<array>, item_applied_taxes: list<array>}> by order id */
    public array $orderTaxes = [];

    /** @var array<int, array<string, mixed>> store id => config path => value */
    public array $storeConfig = [];

    /** @var list<int> */
    public array $classReads = [];

    /** @var list<int> */
    public array $detailReads = [];

    /** @var list<array{string, string, mixed}> */
    public array $configReads = [];

    public ?Throwable $classFailure = null;
    public ?Throwable $detailsFailure = null;
    public ?Throwable $configFailure = null;

    public function __construct()
    {
        $this->products = new ProductResource();
        $this->logger = new ArrayLogger();
    }

    /** The Magento side of the fixture orders (Documents): what the extractor should read back. */
    public static function forFixtures(): self
    {
        $data = new self();
        // Tote: Taxable Goods. Scarf: the configurable parent has no class of its own ("None"),
        // its grey child is Taxable Goods. E-book: Zero Rated.
        $data->products->raw = [
            310 => ['tax_class_id' => '2'],
            402 => ['tax_class_id' => '0'],
            405 => ['tax_class_id' => '2'],
            77 => ['tax_class_id' => '5'],
        ];
        foreach ([Documents::ukCardOrder(), Documents::euroGuestOrder()] as $order) {
            $data->orderTaxes[(int) $order['entity_id']] = [
                'applied_taxes' => $order['applied_taxes'],
                'item_applied_taxes' => $order['item_applied_taxes'],
            ];
            $data->storeConfig[(int) $order['store_id']] = self::configValues($order['tax_config']);
        }
        return $data;
    }

    /** Contract tax_config => config values as Magento stores them ("0"/"1"). */
    public static function configValues(array $taxConfig): array
    {
        $values = [];
        foreach (MagentoExtractor::TAX_CONFIG_PATHS as $key => $path) {
            if (array_key_exists($key, $taxConfig)) {
                $value = $taxConfig[$key];
                $values[$path] = is_bool($value) ? ($value ? '1' : '0') : $value;
            }
        }
        return $values;
    }

    public function extractor(): MagentoExtractor
    {
        return new MagentoExtractor($this->products, $this, $this, $this, $this->logger);
    }

    public function get($taxClassId)
    {
        $this->classReads[] = (int) $taxClassId;
        if ($this->classFailure !== null) {
            throw $this->classFailure;
        }
        if (!isset($this->classes[(int) $taxClassId])) {
            throw new NoSuchEntityException('No such entity with class_id = ' . $taxClassId);
        }
        return new DataObject(['class_id' => (int) $taxClassId, 'class_name' => $this->classes[(int) $taxClassId]]);
    }

    public function getOrderTaxDetails($orderId)
    {
        $this->detailReads[] = (int) $orderId;
        if ($this->detailsFailure !== null) {
            throw $this->detailsFailure;
        }
        $taxes = $this->orderTaxes[(int) $orderId] ?? ['applied_taxes' => [], 'item_applied_taxes' => []];
        $items = [];
        foreach ($taxes['item_applied_taxes'] as $item) {
            $items[] = new DataObject([
                'type' => $item['type'],
                'item_id' => $item['item_id'],
                'associated_item_id' => $item['associated_item_id'],
                'applied_taxes' => array_map(static fn (array $t) => new DataObject($t), $item['applied_taxes']),
            ]);
        }
        return new DataObject([
            'applied_taxes' => array_map(static fn (array $t) => new DataObject($t), $taxes['applied_taxes']),
            'items' => $items,
        ]);
    }

    public function getValue($path, $scopeType = self::SCOPE_TYPE_DEFAULT, $scopeCode = null)
    {
        $this->configReads[] = [(string) $path, (string) $scopeType, $scopeCode];
        if ($this->configFailure !== null) {
            throw $this->configFailure;
        }
        return $scopeType === 'store' ? ($this->storeConfig[(int) $scopeCode][$path] ?? null) : null;
    }

    public function isSetFlag($path, $scopeType = self::SCOPE_TYPE_DEFAULT, $scopeCode = null)
    {
        return (bool) $this->getValue($path, $scopeType, $scopeCode);
    }
}
