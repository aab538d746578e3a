<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Snapshot;

use DateTimeImmutable;
use DateTimeZone;
use Magento\Sales\Api\TransactionRepositoryInterface;
use Magento\Sales\Model\Order\Invoice;
use Throwable;

/**
 * When the money of an invoice was taken: the creation time of its capture transaction (Magento
 * stores UTC). Used by the backfill, which records an old invoice's invoice.paid as it happened:
 * a capture days after the invoice (authorise now, capture later) is dated at the capture, not at
 * the invoice. Null when the invoice has no transaction (offline methods are paid when the invoice
 * is made) or the transaction cannot be read.
 */
class CaptureTime
{
    public function __construct(private TransactionRepositoryInterface $transactions)
    {
    }

    public function of(Invoice $invoice): ?DateTimeImmutable
    {
        $transactionId = (string) ($invoice->getData('transaction_id') ?? '');
        if ($transactionId === '') {
            return null;
        }
        try {
            $order = $invoice->getOrder();
            $payment = $order->getPayment();
            if ($payment === null || !$payment->getId()) {
                return null;
            }
            $transaction = $this->transactions->getByTransactionId(
                $transactionId,
                (int) $payment->getId(),
                (int) $order->getId()
            );
            if (!$transaction) {
                return null;
            }
            $created = (string) ($transaction->getCreatedAt() ?? '');
            return $created === '' ? null : new DateTimeImmutable($created, new DateTimeZone('UTC'));
        } catch (Throwable) {
            return null;
        }
    }
}
