<?php

declare(strict_types=1);

/*
 * Test bootstrap without Composer or Magento: PSR-4 for the module (src/), the tests (Test/) and
 * the hand-written stand-ins for the few Magento, PSR and Symfony types the glue touches
 * (Test/Stub/, loaded only here — never shipped, see .gitattributes).
 */

spl_autoload_register(static function (string $class): void {
    $roots = [
        'Ledger\\SageSync\\Test\\' => __DIR__ . '/',
        'Ledger\\SageSync\\' => dirname(__DIR__) . '/src/',
        'Magento\\' => __DIR__ . '/Stub/Magento/',
        'Psr\\Log\\' => __DIR__ . '/Stub/Psr/Log/',
        'Symfony\\Component\\Console\\' => __DIR__ . '/Stub/Symfony/Console/',
    ];
    foreach ($roots as $prefix => $dir) {
        if (str_starts_with($class, $prefix)) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
            return;
        }
    }
});

date_default_timezone_set('UTC');

require __DIR__ . '/Support/functions.php';

\Magento\Backend\Block\Template::$moduleDirs['Ledger_SageSync'] = dirname(__DIR__);
