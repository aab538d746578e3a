<?php

/**
 * The Magento side of the end-to-end suite against the real engine (`./dev magento-e2e`,
 * testbed/stack/src/bin/ledger-magento-e2e.rs). Each command prints one JSON object.
 *
 *   php magento/dev/real-e2e.php MAGENTO_ROOT setup GATEWAY_URL
 *       the store made ready: the module's gateway URL and NATS transport; UK VAT at 20 % (class
 *       "Taxable Goods") and 5 % (class "Reduced Rate Goods") with taxed shipping; flat-rate
 *       shipping 5.00 per order; check / money order and purchase order enabled; a EUR store view
 *       (code ledger_eur) beside the GBP default one, with a GBP→EUR rate
 *   php magento/dev/real-e2e.php MAGENTO_ROOT documents
 *       through Magento's service contracts: a customer; a simple (20 %) and a virtual (5 %)
 *       product; a 10 % cart rule on the simple product only; order A (both products, shipping,
 *       check / money order) invoiced with capture requested (paid) and partly refunded with an
 *       adjustment fee; order B paid by purchase order (net terms); guest order C; order D in
 *       the EUR store view; order Z of a free product (grand total 0.00). Printed: each document's Magento row (grand totals as Magento
 *       stored them) and the new outbox rows
 *   php magento/dev/real-e2e.php MAGENTO_ROOT invoices N [SPREAD_SECONDS]
 *       N orders of one product, each invoiced (paid), one after the other, SPREAD_SECONDS
 *       apart in all; printed: each invoice's increment id, commit time (Unix seconds with
 *       microseconds, taken at the save's last step inside its transaction, after the module's
 *       observer; null if that was not seen) and how long Magento's invoice save took (InvoiceOrderInterface, with the
 *       module's observers and, in the admin area, its publish after commit)
 *   php magento/dev/real-e2e.php MAGENTO_ROOT refund ORDER_ID
 *       one unit of the order's first refundable item refunded offline (RefundOrderInterface, no
 *       shipping or fees); printed: the credit memo's id, increment id and grand total
 *   php magento/dev/real-e2e.php MAGENTO_ROOT unpause
 *       the pause of the publish after commit (set after a failed attempt) lifted
 *   php magento/dev/real-e2e.php MAGENTO_ROOT status
 *       the module's status cron (ledger_sage_sync_status) run once; printed: the status tables
 *       and the invoice / credit-memo grid rows, the outbox counts and dead letters
 *   php magento/dev/real-e2e.php MAGENTO_ROOT reset
 *       a fresh start on the throwaway store: waiting outbox rows of earlier runs marked published,
 *       dead letters resolved, the pairing, status cursor, pause flag and status rows removed,
 *       earlier runs' rows taken off the invoice and credit-memo grids, their saved grid states
 *       dropped
 *   php magento/dev/real-e2e.php MAGENTO_ROOT config PATH VALUE
 *       one ledger_sage_sync/ setting (default scope), the config cache cleaned
 *   php magento/dev/real-e2e.php MAGENTO_ROOT outbox
 *       outbox rows by status, and every row's event type, entity and publish time
 */

declare(strict_types=1);

[$self, $root, $command] = array_pad($argv, 3, '');
if ($root === '' || !is_file($root . '/app/bootstrap.php') || $command === '') {
    fwrite(STDERR, "usage: php real-e2e.php MAGENTO_ROOT setup|documents|invoices|status|outbox ...\n");
    exit(2);
}
require __DIR__ . '/real-bootstrap.php';

/**
 * The moment an invoice's save reached its last step inside the transaction (after the module's
 * own save_after observer wrote the outbox row; the commit follows), per invoice id: the start
 * of the commit→Sage measurement.
 */
final class LedgerE2eCommitClock implements \Magento\Framework\Event\ObserverInterface
{
    /** @var array<int, float> */
    public static array $times = [];

    public function execute(\Magento\Framework\Event\Observer $observer)
    {
        $id = (int) $observer->getEvent()->getInvoice()->getId();
        self::$times[$id] ??= microtime(true);
    }
}

$om->get(\Magento\Framework\Event\Config\Data::class)->merge(['sales_order_invoice_save_after' => [
    'ledger_e2e_commit_clock' => ['instance' => LedgerE2eCommitClock::class, 'name' => 'ledger_e2e_commit_clock'],
]]);

/** Prints one JSON object and ends. */
function answer(array $data): never
{
    echo json_encode($data, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES) . "\n";
    exit(0);
}

function setup(\Magento\Framework\ObjectManagerInterface $om, $db, string $gateway): array
{
    $writer = $om->get(\Magento\Framework\App\Config\Storage\WriterInterface::class);
    $settings = [
        'ledger_sage_sync/pairing/gateway_url' => $gateway,
        'ledger_sage_sync/general/enabled' => '1',
        'ledger_sage_sync/general/transport' => 'nats',
        'general/country/default' => 'GB',
        'general/country/allow' => 'GB,IE,FR,DE,NL,ES,IT,US',
        'general/store_information/name' => 'Ledger end-to-end store',
        'currency/options/base' => 'GBP',
        'currency/options/default' => 'GBP',
        'currency/options/allow' => 'GBP,EUR',
        'tax/classes/shipping_tax_class' => '2',
        'tax/calculation/price_includes_tax' => '0',
        'tax/calculation/shipping_includes_tax' => '0',
        'tax/calculation/apply_after_discount' => '1',
        'tax/calculation/based_on' => 'shipping',
        'tax/defaults/country' => 'GB',
        'carriers/flatrate/active' => '1',
        'carriers/flatrate/type' => 'O',
        'carriers/flatrate/price' => '5.00',
        'payment/checkmo/active' => '1',
        'payment/purchaseorder/active' => '1',
        'payment/free/active' => '1',
        // Admin pages opened by URL in the browser checks (throwaway store).
        'admin/security/use_form_key' => '0',
    ];
    foreach ($settings as $path => $value) {
        $writer->save($path, $value);
    }

    // The EUR store view, in the default website and store group.
    $storeRepository = $om->get(\Magento\Store\Api\StoreRepositoryInterface::class);
    try {
        $eur = $storeRepository->get('ledger_eur');
    } catch (\Magento\Framework\Exception\NoSuchEntityException) {
        $eur = $om->create(\Magento\Store\Model\Store::class);
        $eur->setCode('ledger_eur')->setName('Euro')->setWebsiteId(1)->setGroupId(1)->setIsActive(1)->setSortOrder(10);
        $om->get(\Magento\Store\Model\ResourceModel\Store::class)->save($eur);
    }
    $storeId = (int) $eur->getId();
    // Order, invoice and credit-memo numbers of the new view (what Magento does on store_add).
    $sequences = $db->getTableName('sales_sequence_meta');
    if ((int) $db->fetchOne("SELECT COUNT(*) FROM $sequences WHERE store_id = ?", [$storeId]) === 0) {
        $observer = new \Magento\Framework\Event\Observer(['store' => $eur]);
        $om->get(\Magento\SalesSequence\Observer\SequenceCreatorObserver::class)->execute($observer);
    }
    $writer->save('currency/options/default', 'EUR', 'stores', $storeId);
    $writer->save('currency/options/allow', 'GBP,EUR', 'stores', $storeId);
    $om->create(\Magento\Directory\Model\Currency::class)->saveRates(['GBP' => ['EUR' => 1.17, 'GBP' => 1]]);

    // UK VAT: 20 % on Taxable Goods (class 2) and shipping, 5 % on Reduced Rate Goods.
    $classTable = $db->getTableName('tax_class');
    $reduced = (int) $db->fetchOne(
        "SELECT class_id FROM $classTable WHERE class_name = 'Reduced Rate Goods' AND class_type = 'PRODUCT'"
    );
    if ($reduced === 0) {
        $db->insert($classTable, ['class_name' => 'Reduced Rate Goods', 'class_type' => 'PRODUCT']);
        $reduced = (int) $db->lastInsertId($classTable);
    }
    $rateRepository = $om->get(\Magento\Tax\Api\TaxRateRepositoryInterface::class);
    $ruleRepository = $om->get(\Magento\Tax\Api\TaxRuleRepositoryInterface::class);
    $rateTable = $db->getTableName('tax_calculation_rate');
    $rules = [['GB-VAT-20', 20.0, 2], ['GB-VAT-5', 5.0, $reduced]];
    foreach ($rules as [$code, $percent, $productClass]) {
        if ((int) $db->fetchOne("SELECT COUNT(*) FROM $rateTable WHERE code = ?", [$code]) > 0) {
            continue;
        }
        $rate = $om->create(\Magento\Tax\Api\Data\TaxRateInterface::class);
        $rate->setCode($code)->setTaxCountryId('GB')->setTaxPostcode('*')->setRate($percent)->setTaxRegionId(0);
        $rate = $rateRepository->save($rate);
        $rule = $om->create(\Magento\Tax\Api\Data\TaxRuleInterface::class);
        $rule->setCode("$code rule")->setTaxRateIds([$rate->getId()])->setCustomerTaxClassIds([3])
            ->setProductTaxClassIds([$productClass])->setPriority(0)->setPosition(0);
        $ruleRepository->save($rule);
    }
    $om->get(\Magento\Framework\App\Cache\TypeListInterface::class)->cleanType('config');
    return ['eur_store_id' => $storeId, 'reduced_tax_class' => $reduced];
}

/** The Magento row of an order, its invoices and credit memos, as Magento stored them. */
function orderRow(\Magento\Framework\ObjectManagerInterface $om, int $orderId): array
{
    $order = $om->create(\Magento\Sales\Api\OrderRepositoryInterface::class)->get($orderId);
    $invoices = [];
    foreach ($order->getInvoiceCollection() as $invoice) {
        $invoices[] = [
            'id' => (int) $invoice->getId(), 'increment_id' => $invoice->getIncrementId(),
            'grand_total' => $invoice->getGrandTotal(), 'base_grand_total' => $invoice->getBaseGrandTotal(),
            'tax' => $invoice->getTaxAmount(), 'state' => (int) $invoice->getState(),
        ];
    }
    $memos = [];
    foreach ($order->getCreditmemosCollection() as $memo) {
        $memos[] = [
            'id' => (int) $memo->getId(), 'increment_id' => $memo->getIncrementId(),
            'grand_total' => $memo->getGrandTotal(), 'base_grand_total' => $memo->getBaseGrandTotal(),
            'adjustment_negative' => $memo->getAdjustmentNegative(),
        ];
    }
    $taxRates = [];
    foreach ($order->getItems() as $item) {
        $taxRates[] = (float) $item->getTaxPercent();
    }
    return [
        'id' => $orderId, 'increment_id' => $order->getIncrementId(), 'store_id' => (int) $order->getStoreId(),
        'grand_total' => $order->getGrandTotal(), 'base_grand_total' => $order->getBaseGrandTotal(),
        'currency' => $order->getOrderCurrencyCode(), 'base_currency' => $order->getBaseCurrencyCode(),
        'discount' => $order->getDiscountAmount(), 'shipping_tax' => $order->getShippingTaxAmount(),
        'tax_percents' => array_values(array_unique($taxRates)), 'payment' => $order->getPayment()->getMethod(),
        'customer_is_guest' => (bool) $order->getCustomerIsGuest(), 'invoices' => $invoices, 'creditmemos' => $memos,
    ];
}

/** Places an order through the quote service contracts; returns its id. */
function placeOrder(
    \Magento\Framework\ObjectManagerInterface $om,
    int $storeId,
    ?int $customerId,
    array $lines,
    string $method,
    ?string $email = null
): int {
    $address = [
        'firstname' => 'Ada', 'lastname' => 'Lovelace', 'street' => '1 High Street', 'city' => 'London',
        'country_id' => 'GB', 'postcode' => 'SW1A 1AA', 'telephone' => '02000000000',
    ];
    $storeManager = $om->get(\Magento\Store\Model\StoreManagerInterface::class);
    $storeManager->setCurrentStore($storeId);
    $store = $storeManager->getStore($storeId);
    $productRepository = $om->get(\Magento\Catalog\Api\ProductRepositoryInterface::class);
    $quote = $om->create(\Magento\Quote\Model\Quote::class);
    $quote->setStore($store);
    $quote->setQuoteCurrencyCode($store->getDefaultCurrencyCode());
    $quote->setCurrency();
    if ($customerId !== null) {
        $quote->assignCustomer($om->get(\Magento\Customer\Api\CustomerRepositoryInterface::class)->getById($customerId));
    } else {
        $quote->setCustomerIsGuest(true)->setCustomerEmail($email)->setCustomerGroupId(0)
            ->setCustomerFirstname('Grace')->setCustomerLastname('Hopper');
    }
    $hasShipping = false;
    foreach ($lines as [$sku, $qty]) {
        $product = $productRepository->get($sku, false, $storeId, true);
        $hasShipping = $hasShipping || $product->getTypeId() === 'simple';
        $quote->addProduct($product, $qty);
    }
    $quote->getBillingAddress()->addData($address);
    if ($hasShipping) {
        $quote->getShippingAddress()->addData($address);
        $quote->getShippingAddress()->setCollectShippingRates(true)->collectShippingRates()
            ->setShippingMethod('flatrate_flatrate');
    }
    $payment = ['method' => $method];
    if ($method === 'purchaseorder') {
        $payment['po_number'] = 'PO-' . random_int(10000, 99999);
    }
    $quote->setPaymentMethod($method);
    $quote->setInventoryProcessed(false);
    $quoteRepository = $om->get(\Magento\Quote\Api\CartRepositoryInterface::class);
    $quoteRepository->save($quote);
    $quote->getPayment()->setQuote($quote)->importData($payment);
    $quote->collectTotals();
    $quoteRepository->save($quote);
    $order = $om->get(\Magento\Quote\Api\CartManagementInterface::class)->submit($quote);
    return (int) $order->getEntityId();
}

function product(
    \Magento\Framework\ObjectManagerInterface $om,
    string $sku,
    string $type,
    float $price,
    int $taxClass
): string {
    $product = $om->get(\Magento\Catalog\Api\Data\ProductInterfaceFactory::class)->create();
    $product->setSku($sku)->setName("Ledger e2e $sku")->setTypeId($type)
        ->setAttributeSetId(4)->setPrice($price)->setVisibility(4)->setStatus(1)->setWebsiteIds([1])
        ->setCustomAttribute('tax_class_id', $taxClass)
        ->setStockData(['qty' => 1000, 'is_in_stock' => 1, 'use_config_manage_stock' => 1, 'manage_stock' => 1]);
    if ($type === 'simple') {
        $product->setWeight(1.0);
    }
    $om->get(\Magento\Catalog\Api\ProductRepositoryInterface::class)->save($product);
    return $sku;
}

function customer(\Magento\Framework\ObjectManagerInterface $om, string $run): int
{
    $customer = $om->get(\Magento\Customer\Api\Data\CustomerInterfaceFactory::class)->create();
    $customer->setEmail("ledger-e2e-$run@example.com")->setFirstname('Ada')->setLastname('Lovelace')
        ->setWebsiteId(1)->setGroupId(1);
    return (int) $om->get(\Magento\Customer\Api\CustomerRepositoryInterface::class)->save($customer)->getId();
}

/** A 10 % cart rule (no coupon) on one SKU only: a per-item discount. */
function itemDiscount(\Magento\Framework\ObjectManagerInterface $om, string $sku): void
{
    $rule = $om->create(\Magento\SalesRule\Model\Rule::class);
    $rule->setName("Ledger e2e 10% off $sku")->setIsActive(1)->setWebsiteIds([1])->setCustomerGroupIds([0, 1, 2, 3])
        ->setCouponType(1)->setSimpleAction('by_percent')->setDiscountAmount(10)->setDiscountQty(0)
        ->setApplyToShipping(0)->setStopRulesProcessing(0)->setUsesPerCustomer(0);
    $rule->getActions()->loadArray([
        'type' => \Magento\SalesRule\Model\Rule\Condition\Product\Combine::class,
        'aggregator' => 'all', 'value' => '1',
        'conditions' => [[
            'type' => \Magento\SalesRule\Model\Rule\Condition\Product::class,
            'attribute' => 'sku', 'operator' => '==', 'value' => $sku,
        ]],
    ]);
    $rule->save();
}

function invoice(\Magento\Framework\ObjectManagerInterface $om, int $orderId, bool $capture): int
{
    return (int) $om->get(\Magento\Sales\Api\InvoiceOrderInterface::class)->execute($orderId, $capture);
}

function outboxSince($db, int $after): array
{
    $outbox = $db->getTableName('ledger_sage_outbox');
    return $db->fetchAll(
        "SELECT id, event_type, entity_type, entity_id, status, last_error FROM $outbox WHERE id > ? ORDER BY id",
        [$after]
    );
}

$outboxTable = $db->getTableName('ledger_sage_outbox');
switch ($command) {
    case 'setup':
        answer(setup($om, $db, (string) ($argv[3] ?? '')));

    case 'documents':
        $before = (int) $db->fetchOne("SELECT COALESCE(MAX(id), 0) FROM $outboxTable");
        $run = date('His') . random_int(100, 999);
        $eurStore = (int) $om->get(\Magento\Store\Api\StoreRepositoryInterface::class)->get('ledger_eur')->getId();
        $reduced = (int) $db->fetchOne(
            "SELECT class_id FROM {$db->getTableName('tax_class')} WHERE class_name = 'Reduced Rate Goods'"
        );
        $simple = product($om, "e2e-simple-$run", 'simple', 24.99, 2);
        $virtual = product($om, "e2e-virtual-$run", 'virtual', 9.95, $reduced);
        itemDiscount($om, $simple);
        $customerId = customer($om, $run);

        $a = placeOrder($om, 1, $customerId, [[$simple, 2], [$virtual, 1]], 'checkmo');
        invoice($om, $a, true);
        $orderA = $om->create(\Magento\Sales\Api\OrderRepositoryInterface::class)->get($a);
        $refundLines = [];
        foreach ($orderA->getItems() as $item) {
            if ($item->getSku() === $simple) {
                $line = $om->create(\Magento\Sales\Api\Data\CreditmemoItemCreationInterface::class);
                $line->setOrderItemId((int) $item->getItemId())->setQty(1);
                $refundLines[] = $line;
            }
        }
        $arguments = $om->create(\Magento\Sales\Api\Data\CreditmemoCreationArgumentsInterface::class);
        $arguments->setShippingAmount(0)->setAdjustmentNegative(2.50)->setAdjustmentPositive(0);
        $om->get(\Magento\Sales\Api\RefundOrderInterface::class)
            ->execute($a, $refundLines, false, false, null, $arguments);

        $b = placeOrder($om, 1, $customerId, [[$simple, 1]], 'purchaseorder');
        invoice($om, $b, false);
        $c = placeOrder($om, 1, null, [[$simple, 1], [$virtual, 2]], 'checkmo', "guest-$run@example.com");
        invoice($om, $c, true);
        $d = placeOrder($om, $eurStore, $customerId, [[$simple, 1], [$virtual, 1]], 'checkmo');
        invoice($om, $d, true);
        $free = product($om, "e2e-free-$run", 'virtual', 0.00, 2);
        $z = placeOrder($om, 1, $customerId, [[$free, 1]], 'free');
        invoice($om, $z, true);
        answer([
            'run' => $run, 'customer_id' => $customerId, 'skus' => [$simple, $virtual],
            'orders' => [
                'a' => orderRow($om, $a), 'po' => orderRow($om, $b),
                'guest' => orderRow($om, $c), 'eur' => orderRow($om, $d), 'free' => orderRow($om, $z),
            ],
            'outbox' => outboxSince($db, $before),
        ]);

    case 'invoices':
        $count = max(1, (int) ($argv[3] ?? 1));
        $spread = max(0.0, (float) ($argv[4] ?? 0));
        $run = date('His') . random_int(100, 999);
        $sku = product($om, "e2e-latency-$run", 'virtual', 10.00, 2);
        $customerId = customer($om, $run);
        $made = [];
        $started = microtime(true);
        for ($i = 0; $i < $count; $i++) {
            $due = $started + ($count > 1 ? $spread * $i / ($count - 1) : 0);
            $wait = $due - microtime(true);
            if ($wait > 0) {
                usleep((int) ($wait * 1e6));
            }
            $orderId = placeOrder($om, 1, $customerId, [[$sku, 1]], 'checkmo');
            $saving = microtime(true);
            $invoiceId = invoice($om, $orderId, true);
            $committed = microtime(true);
            $invoice = $om->create(\Magento\Sales\Api\InvoiceRepositoryInterface::class)->get($invoiceId);
            $made[] = [
                'invoice_id' => $invoiceId, 'increment_id' => $invoice->getIncrementId(),
                'grand_total' => $invoice->getGrandTotal(),
                'committed_at' => LedgerE2eCommitClock::$times[$invoiceId] ?? null,
                'save_ms' => round(($committed - $saving) * 1000, 1),
            ];
        }
        answer(['invoices' => $made]);

    case 'refund':
        // One unit of the order's first refundable item, refunded offline (no shipping, no fees).
        $orderId = (int) ($argv[3] ?? 0);
        $order = $om->create(\Magento\Sales\Api\OrderRepositoryInterface::class)->get($orderId);
        $lines = [];
        foreach ($order->getItems() as $item) {
            if ($item->getParentItemId() === null && $item->getQtyInvoiced() - $item->getQtyRefunded() >= 1) {
                $line = $om->create(\Magento\Sales\Api\Data\CreditmemoItemCreationInterface::class);
                $line->setOrderItemId((int) $item->getItemId())->setQty(1);
                $lines[] = $line;
                break;
            }
        }
        if ($lines === []) {
            fwrite(STDERR, "refund: order $orderId has nothing left to refund\n");
            exit(1);
        }
        $arguments = $om->create(\Magento\Sales\Api\Data\CreditmemoCreationArgumentsInterface::class);
        $arguments->setShippingAmount(0)->setAdjustmentNegative(0)->setAdjustmentPositive(0);
        $memoId = (int) $om->get(\Magento\Sales\Api\RefundOrderInterface::class)
            ->execute($orderId, $lines, false, false, null, $arguments);
        $memo = $om->create(\Magento\Sales\Api\CreditmemoRepositoryInterface::class)->get($memoId);
        answer([
            'id' => $memoId, 'increment_id' => $memo->getIncrementId(), 'grand_total' => $memo->getGrandTotal(),
        ]);

    case 'status':
        $om->get(\Ledger\SageSync\Cron\PullStatus::class)->execute();
        $tables = [];
        foreach (['invoice', 'creditmemo'] as $kind) {
            $tables[$kind] = $db->fetchAll(
                "SELECT s.{$kind}_id AS id, d.increment_id, s.status, s.message, s.sage_ref, s.sage_id, g.sage_status,
                        g.sage_status_message
                 FROM {$db->getTableName("ledger_sage_{$kind}_status")} s
                 JOIN {$db->getTableName("sales_$kind")} d ON d.entity_id = s.{$kind}_id
                 LEFT JOIN {$db->getTableName("sales_{$kind}_grid")} g ON g.entity_id = s.{$kind}_id
                 ORDER BY s.{$kind}_id"
            );
        }
        answer($tables);

    case 'reset':
        $db->update($outboxTable, ['status' => 'published', 'published_at' => gmdate('Y-m-d H:i:s')], [
            'status IN (?)' => ['pending', 'retry', 'dead'],
        ]);
        $db->delete($db->getTableName('ledger_sage_dead_letter'));
        $db->delete($db->getTableName('ledger_sage_invoice_status'));
        $db->delete($db->getTableName('ledger_sage_creditmemo_status'));
        $db->update($db->getTableName('sales_invoice_grid'), ['sage_status' => null, 'sage_status_message' => null]);
        $db->update($db->getTableName('sales_creditmemo_grid'), ['sage_status' => null, 'sage_status_message' => null]);
        $db->delete($db->getTableName('core_config_data'), ['path IN (?)' => \Ledger\SageSync\Model\Pairing\ConfigPairingStore::PATHS]);
        $db->delete($db->getTableName('flag'), ['flag_code IN (?)' => [
            \Ledger\SageSync\Model\Status\FlagCursorStore::FLAG,
            \Ledger\SageSync\Observer\FlushAfterCommit::PAUSE_FLAG,
        ]]);
        $db->delete($db->getTableName('cron_schedule'), ['job_code LIKE ?' => 'ledger_sage_sync%']);
        // The admin grids show this run's documents only, in their default order: earlier runs'
        // rows leave the grid tables (the documents stay) and the admin's saved grid states go.
        $db->delete($db->getTableName('sales_invoice_grid'));
        $db->delete($db->getTableName('sales_creditmemo_grid'));
        $db->delete($db->getTableName('ui_bookmark'), ['namespace IN (?)' => [
            'sales_order_invoice_grid', 'sales_order_creditmemo_grid',
        ]]);
        $om->get(\Magento\Framework\App\Cache\TypeListInterface::class)->cleanType('config');
        answer(['reset' => true]);

    case 'unpause':
        $db->delete($db->getTableName('flag'), ['flag_code = ?' => \Ledger\SageSync\Observer\FlushAfterCommit::PAUSE_FLAG]);
        answer(['unpaused' => true]);

    case 'config':
        $path = (string) ($argv[3] ?? '');
        if (!str_starts_with($path, 'ledger_sage_sync/')) {
            fwrite(STDERR, "config: only ledger_sage_sync/ settings\n");
            exit(2);
        }
        $om->get(\Magento\Framework\App\Config\Storage\WriterInterface::class)->save($path, (string) ($argv[4] ?? ''));
        $om->get(\Magento\Framework\App\Cache\TypeListInterface::class)->cleanType('config');
        answer([$path => (string) ($argv[4] ?? '')]);

    case 'outbox':
        $store = $om->get(\Ledger\SageSync\Model\Outbox\DbOutboxStore::class);
        answer([
            'counts' => $store->countByStatus(),
            'dead' => $store->unresolvedDeadLetters(),
            'rows' => $db->fetchAll(
                "SELECT id, event_type, entity_type, entity_id, status, published_at, last_error FROM $outboxTable ORDER BY id"
            ),
        ]);

    default:
        fwrite(STDERR, "unknown command $command\n");
        exit(2);
}
