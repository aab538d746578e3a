<?php

/**
 * Creates real documents in a real Magento through its own service contracts and prints what the
 * module recorded, as one JSON object. Run by magento/dev/real-magento.sh after the install:
 *
 *   php magento/dev/real-documents.php MAGENTO_ROOT [ENVELOPE_DIR]
 *
 * Made: a taxable simple product (20 % UK VAT class "Taxable Goods"), a customer with a UK
 * address, an order of 2 x the product with flat-rate shipping paid by check/money order, its
 * invoice (InvoiceOrderInterface) and a partial credit memo with an adjustment fee
 * (RefundOrderInterface). Printed: the new outbox rows (event type, entity, status, whether the
 * payload is stored) and the Magento grand totals, so the caller can assert one outbox row per
 * document and no error. With ENVELOPE_DIR, each new row is also written there as the envelope
 * the module would publish (its own EnvelopeFactory, merchant "real-magento"), for
 * `ledgerctl validate`.
 */

declare(strict_types=1);

$root = $argv[1] ?? '';
if ($root === '' || !is_file($root . '/app/bootstrap.php')) {
    fwrite(STDERR, "usage: php real-documents.php MAGENTO_ROOT\n");
    exit(2);
}
require __DIR__ . '/real-bootstrap.php';
$outbox = $db->getTableName('ledger_sage_outbox');
$before = (int) $db->fetchOne("SELECT COALESCE(MAX(id), 0) FROM $outbox");
$run = date('His') . random_int(100, 999);

// Product: simple, taxable goods (tax class 2), in stock.
$productFactory = $om->get(\Magento\Catalog\Api\Data\ProductInterfaceFactory::class);
$productRepository = $om->get(\Magento\Catalog\Api\ProductRepositoryInterface::class);
$product = $productFactory->create();
$product->setSku("ledger-real-$run")->setName("Ledger real product $run")->setTypeId('simple')
    ->setAttributeSetId(4)->setPrice(12.50)->setVisibility(4)->setStatus(1)->setWebsiteIds([1])
    ->setCustomAttribute('tax_class_id', 2)
    ->setStockData(['qty' => 100, 'is_in_stock' => 1, 'use_config_manage_stock' => 1, 'manage_stock' => 1]);
$product = $productRepository->save($product);

// Customer with a UK address.
$customerFactory = $om->get(\Magento\Customer\Api\Data\CustomerInterfaceFactory::class);
$customerRepository = $om->get(\Magento\Customer\Api\CustomerRepositoryInterface::class);
$customer = $customerFactory->create();
$customer->setEmail("ledger-real-$run@example.com")->setFirstname('Ada')->setLastname('Lovelace')
    ->setWebsiteId(1)->setGroupId(1);
$customer = $customerRepository->save($customer);

// Order: 2 x product, flat-rate shipping, check / money order.
$address = [
    'firstname' => 'Ada', 'lastname' => 'Lovelace', 'street' => '1 High Street', 'city' => 'London',
    'country_id' => 'GB', 'postcode' => 'SW1A 1AA', 'telephone' => '02000000000',
];
$quote = $om->create(\Magento\Quote\Model\Quote::class);
$quote->setStore($om->get(\Magento\Store\Model\StoreManagerInterface::class)->getStore(1));
$quote->setCurrency();
$quote->assignCustomer($customerRepository->getById($customer->getId()));
$quote->addProduct($productRepository->get($product->getSku(), false, null, true), 2);
$quote->getBillingAddress()->addData($address);
$quote->getShippingAddress()->addData($address);
$quote->getShippingAddress()->setCollectShippingRates(true)->collectShippingRates()
    ->setShippingMethod('flatrate_flatrate');
$quote->setPaymentMethod('checkmo');
$quote->setInventoryProcessed(false);
$quoteRepository = $om->get(\Magento\Quote\Api\CartRepositoryInterface::class);
$quoteRepository->save($quote);
$quote->getPayment()->setQuote($quote)->importData(['method' => 'checkmo']);
$quote->collectTotals();
$quoteRepository->save($quote);
$order = $om->get(\Magento\Quote\Api\CartManagementInterface::class)->submit($quote);
$orderId = (int) $order->getEntityId();

// Invoice through the service contract (offline capture, as an admin does for check/money order).
$invoiceId = (int) $om->get(\Magento\Sales\Api\InvoiceOrderInterface::class)->execute($orderId, true);

// Partial credit memo: one of the two items, with a 1.00 adjustment fee.
$order = $om->get(\Magento\Sales\Api\OrderRepositoryInterface::class)->get($orderId);
$items = [];
foreach ($order->getItems() as $item) {
    $line = $om->create(\Magento\Sales\Api\Data\CreditmemoItemCreationInterface::class);
    $line->setOrderItemId((int) $item->getItemId())->setQty(1);
    $items[] = $line;
}
$arguments = $om->create(\Magento\Sales\Api\Data\CreditmemoCreationArgumentsInterface::class);
$arguments->setShippingAmount(0)->setAdjustmentNegative(1.00)->setAdjustmentPositive(0);
$creditmemoId = (int) $om->get(\Magento\Sales\Api\RefundOrderInterface::class)
    ->execute($orderId, $items, false, false, null, $arguments);

$rows = $db->fetchAll(
    "SELECT id, event_type, entity_type, entity_id, status, payload IS NOT NULL AS has_payload, last_error
     FROM $outbox WHERE id > ? ORDER BY id",
    [$before]
);
$envelopeDir = $argv[2] ?? '';
if ($envelopeDir !== '') {
    @mkdir($envelopeDir, 0777, true);
    $store = $om->get(\Ledger\SageSync\Model\Outbox\DbOutboxStore::class);
    $envelopes = new \Ledger\SageSync\Core\Outbox\EnvelopeFactory();
    foreach ($store->due(new DateTimeImmutable('+1 day'), 1000) as $record) {
        if ($record->id <= $before) {
            continue;
        }
        $name = sprintf('%s/%06d-%s.json', $envelopeDir, $record->id, str_replace('.', '-', $record->eventType->value));
        file_put_contents($name, $envelopes->message($record, 'real-magento')->body);
    }
}
$invoice = $om->get(\Magento\Sales\Api\InvoiceRepositoryInterface::class)->get($invoiceId);
$creditmemo = $om->get(\Magento\Sales\Api\CreditmemoRepositoryInterface::class)->get($creditmemoId);
echo json_encode([
    'order' => ['id' => $orderId, 'increment_id' => $order->getIncrementId(), 'grand_total' => $order->getGrandTotal(),
        'tax' => $order->getTaxAmount(), 'currency' => $order->getOrderCurrencyCode()],
    'invoice' => ['id' => $invoiceId, 'grand_total' => $invoice->getGrandTotal(), 'state' => (int) $invoice->getState()],
    'creditmemo' => ['id' => $creditmemoId, 'grand_total' => $creditmemo->getGrandTotal()],
    'customer_id' => (int) $customer->getId(),
    'product_id' => (int) $product->getId(),
    'outbox' => $rows,
], JSON_PRETTY_PRINT) . "\n";
