<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Snapshot;

use Magento\Catalog\Model\Product;
use Magento\Customer\Model\Address;
use Magento\Customer\Model\Customer;
use Magento\Framework\DataObject;
use Magento\Sales\Model\Order;
use Magento\Sales\Model\Order\Creditmemo;
use Magento\Sales\Model\Order\Invoice;

/**
 * Reads Magento models into the plain arrays the core serializer takes (see SnapshotSerializer).
 * Reads only: in-memory data of the document being saved, plus its order, which Magento has
 * already loaded for the save. The serializer decides what leaves the store.
 */
class MagentoExtractor
{
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
        $data['items'] = [];
        foreach ($order->getAllItems() as $item) {
            $row = $this->scalars($item);
            // Magento's own answer to "which line of a composite product carries the amounts".
            $row['is_dummy'] = (bool) $item->isDummy();
            $data['items'][] = $row;
        }
        $billing = $order->getBillingAddress();
        $shipping = $order->getShippingAddress();
        $payment = $order->getPayment();
        $data['billing_address'] = $billing === null ? null : $this->scalars($billing);
        $data['shipping_address'] = $shipping === null ? null : $this->scalars($shipping);
        $data['payment'] = $payment === null ? [] : $this->scalars($payment);
        return $data;
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
        return $this->scalars($product);
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
