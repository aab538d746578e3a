<?php

/**
 * Magento bootstrapped for the dev scripts that act as an admin (real-documents.php,
 * real-e2e.php): `$root` must be the Magento tree. Defines $om (the object manager, admin area,
 * secure area registered) and $db (the default connection).
 */

declare(strict_types=1);

use Magento\Framework\App\Bootstrap;

require $root . '/app/bootstrap.php';

$om = Bootstrap::create(BP, $_SERVER)->getObjectManager();
$om->get(\Magento\Framework\App\State::class)->setAreaCode('adminhtml');
$om->get(\Magento\Framework\Registry::class)->register('isSecureArea', true);
$db = $om->get(\Magento\Framework\App\ResourceConnection::class)->getConnection();
