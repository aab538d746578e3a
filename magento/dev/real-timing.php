<?php

/**
 * Times Magento's own invoice save in a real Magento: N orders are placed first (not timed), then
 * each is invoiced through InvoiceOrderInterface (offline capture, admin area, as an admin's
 * "Submit Invoice") and the call is timed. Prints one JSON object: median / p90 / max in
 * milliseconds, how many saves failed, and how many outbox rows the saves wrote.
 *
 *   php magento/dev/real-timing.php MAGENTO_ROOT [N=50]
 *
 * Run once with the module enabled (and, for the outage case, Ledger unreachable) and once with
 * it disabled to compare (see magento/dev/real-magento.sh --timing).
 */

declare(strict_types=1);

use Magento\Framework\App\Bootstrap;

$root = $argv[1] ?? '';
$count = max(1, (int) ($argv[2] ?? 50));
require $root . '/app/bootstrap.php';
$om = Bootstrap::create(BP, $_SERVER)->getObjectManager();
$om->get(\Magento\Framework\App\State::class)->setAreaCode('adminhtml');
$db = $om->get(\Magento\Framework\App\ResourceConnection::class)->getConnection();
$outbox = $db->getTableName('ledger_sage_outbox');
$hasOutbox = $db->isTableExists($outbox);
$run = date('His') . random_int(100, 999);

$productRepository = $om->get(\Magento\Catalog\Api\ProductRepositoryInterface::class);
$product = $om->get(\Magento\Catalog\Api\Data\ProductInterfaceFactory::class)->create();
$product->setSku("ledger-timing-$run")->setName("Ledger timing $run")->setTypeId('simple')
    ->setAttributeSetId(4)->setPrice(9.99)->setVisibility(4)->setStatus(1)->setWebsiteIds([1])
    ->setCustomAttribute('tax_class_id', 2)
    ->setStockData(['qty' => 100000, 'is_in_stock' => 1, 'manage_stock' => 1]);
$product = $productRepository->save($product);
$customerRepository = $om->get(\Magento\Customer\Api\CustomerRepositoryInterface::class);
$customer = $om->get(\Magento\Customer\Api\Data\CustomerInterfaceFactory::class)->create();
$customer->setEmail("ledger-timing-$run@example.com")->setFirstname('Grace')->setLastname('Hopper')
    ->setWebsiteId(1)->setGroupId(1);
$customer = $customerRepository->save($customer);
$address = [
    'firstname' => 'Grace', 'lastname' => 'Hopper', 'street' => '2 Low Road', 'city' => 'Leeds',
    'country_id' => 'GB', 'postcode' => 'LS1 1AA', 'telephone' => '01130000000',
];
$quoteRepository = $om->get(\Magento\Quote\Api\CartRepositoryInterface::class);
$cartManagement = $om->get(\Magento\Quote\Api\CartManagementInterface::class);
$store = $om->get(\Magento\Store\Model\StoreManagerInterface::class)->getStore(1);
$orderIds = [];
for ($i = 0; $i < $count; $i++) {
    $quote = $om->create(\Magento\Quote\Model\Quote::class);
    $quote->setStore($store);
    $quote->setCurrency();
    $quote->assignCustomer($customerRepository->getById($customer->getId()));
    $quote->addProduct($productRepository->get($product->getSku(), false, null, true), 1);
    $quote->getBillingAddress()->addData($address);
    $quote->getShippingAddress()->addData($address);
    $quote->getShippingAddress()->setCollectShippingRates(true)->collectShippingRates()
        ->setShippingMethod('flatrate_flatrate');
    $quote->setPaymentMethod('checkmo');
    $quote->setInventoryProcessed(false);
    $quoteRepository->save($quote);
    $quote->getPayment()->setQuote($quote)->importData(['method' => 'checkmo']);
    $quote->collectTotals();
    $quoteRepository->save($quote);
    $orderIds[] = (int) $cartManagement->submit($quote)->getEntityId();
}

$before = $hasOutbox ? (int) $db->fetchOne("SELECT COALESCE(MAX(id), 0) FROM $outbox") : 0;
$invoiceOrder = $om->get(\Magento\Sales\Api\InvoiceOrderInterface::class);
$times = [];
$failures = [];
// Each admin save is its own request, and the module's after-commit flush tries the network once
// per request: forget that it ran, so every timed save pays what an admin's save pays.
$flush = $om->get(\Magento\Framework\Module\Manager::class)->isEnabled('Ledger_SageSync')
    ? $om->get(\Ledger\SageSync\Observer\FlushAfterCommit::class) : null;
$newRequest = $flush === null ? static function (): void {
} : \Closure::bind(function (): void {
    $this->done = false;
}, $flush, $flush);
foreach ($orderIds as $orderId) {
    $newRequest();
    $started = hrtime(true);
    try {
        $invoiceOrder->execute($orderId, true);
    } catch (Throwable $e) {
        $failures[] = $e->getMessage();
    }
    $times[] = (hrtime(true) - $started) / 1e6;
}
sort($times);
$at = static fn (float $q): float => round($times[(int) min(count($times) - 1, floor($q * count($times)))], 1);
$median = count($times) % 2 === 1
    ? $times[intdiv(count($times), 2)]
    : ($times[count($times) / 2 - 1] + $times[count($times) / 2]) / 2;
echo json_encode([
    'saves' => count($times),
    'median_ms' => round($median, 1),
    'p90_ms' => $at(0.9),
    'max_ms' => round(max($times), 1),
    'failed' => count($failures),
    'first_failure' => $failures[0] ?? null,
    'outbox_rows' => $hasOutbox ? (int) $db->fetchOne("SELECT COUNT(*) FROM $outbox WHERE id > ?", [$before]) : null,
]) . "\n";
