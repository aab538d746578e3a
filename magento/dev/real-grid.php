<?php

/**
 * Checks the "Sage Status" column as a real Magento builds it: the core invoice and credit-memo
 * listings merged with the module's ui_component files, prepared in the admin area, and the grid
 * rows Magento wrote for the given invoice and credit memo (the module's join in etc/di.xml).
 *
 *   php magento/dev/real-grid.php MAGENTO_ROOT INVOICE_ID CREDITMEMO_ID
 *
 * Prints one line per check and exits non-zero when one fails: the column is in the listing
 * with the module's JS component and cell template, its select filter has the four states each
 * with a label, and the grid row carries sage_status "pending" with its tooltip text.
 */

declare(strict_types=1);

use Magento\Framework\App\Bootstrap;

[$_, $root, $invoiceId, $creditmemoId] = $argv + [null, '', '0', '0'];
require $root . '/app/bootstrap.php';
$om = Bootstrap::create(BP, $_SERVER)->getObjectManager();
$om->get(\Magento\Framework\App\State::class)->setAreaCode('adminhtml');
$om->configure($om->get(\Magento\Framework\ObjectManager\ConfigLoaderInterface::class)->load('adminhtml'));
$factory = $om->get(\Magento\Framework\View\Element\UiComponentFactory::class);
$db = $om->get(\Magento\Framework\App\ResourceConnection::class)->getConnection();
$failed = 0;
$check = static function (bool $ok, string $what) use (&$failed): void {
    printf("   %s %s\n", $ok ? 'ok  ' : 'FAIL', $what);
    $failed += $ok ? 0 : 1;
};
$prepare = static function ($component) use (&$prepare): void {
    foreach ($component->getChildComponents() as $child) {
        $prepare($child);
    }
    $component->prepare();
};
$grids = [
    'sales_order_invoice_grid' => ['sales_invoice_grid', (int) $invoiceId],
    'sales_order_creditmemo_grid' => ['sales_creditmemo_grid', (int) $creditmemoId],
];
foreach ($grids as $listing => [$table, $id]) {
    $component = $factory->create($listing);
    $prepare($component);
    $column = null;
    foreach ($component->getChildComponents() as $child) {
        foreach ($child->getChildComponents() as $candidate) {
            if ($candidate->getName() === 'sage_status') {
                $column = $candidate;
            }
        }
    }
    $check($column !== null, "$listing: a sage_status column");
    $config = $column ? $column->getData('config') : [];
    $check(($config['component'] ?? '') === 'Ledger_SageSync/js/grid/columns/sage-status'
        && ($config['bodyTmpl'] ?? '') === 'Ledger_SageSync/grid/cells/sage-status'
        && (string) ($config['label'] ?? '') === 'Sage Status', "$listing: label, JS component and cell template");
    $options = json_decode(json_encode($config['options'] ?? []), true);
    $labels = array_column($options, 'label', 'value');
    $check(
        ($config['filter'] ?? '') === 'select'
        && $labels === ['pending' => 'Pending', 'synced' => 'Synced', 'skipped' => 'Skipped', 'failed' => 'Failed'],
        "$listing: select filter options " . json_encode($labels)
    );
    $row = $db->fetchRow(
        'SELECT sage_status, sage_status_message FROM ' . $db->getTableName($table) . ' WHERE entity_id = ?',
        [$id]
    );
    $check(
        is_array($row) && $row['sage_status'] === 'pending' && str_starts_with((string) $row['sage_status_message'], 'Queued for Ledger'),
        "$table #$id: " . json_encode($row)
    );
}
exit($failed === 0 ? 0 : 1);
