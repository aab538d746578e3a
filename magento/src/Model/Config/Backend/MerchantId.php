<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Config\Backend;

use Ledger\SageSync\Core\Event\MerchantId as MerchantIdRule;
use Magento\Framework\App\Config\Value;
use Magento\Framework\Exception\LocalizedException;

/**
 * Refuses a merchant id that is not one safe NATS subject token, before it is saved (it becomes
 * part of every subject: magento.<merchant_id>.<entity>.<action>).
 */
class MerchantId extends Value
{
    public function beforeSave()
    {
        $value = trim((string) $this->getValue());
        if ($value !== '' && !MerchantIdRule::isValid($value)) {
            throw new LocalizedException(__(
                'The Ledger merchant id may only contain lower-case letters, digits, "-" and "_" '
                . '(up to 63 characters, starting with a letter or digit).'
            ));
        }
        $this->setValue($value);
        return parent::beforeSave();
    }
}
