<?php

declare(strict_types=1);

use Magento\Framework\Component\ComponentRegistrar;

ComponentRegistrar::register(ComponentRegistrar::MODULE, 'Ledger_SageSync', __DIR__);

// The classes live in src/. Installed with Composer, its psr-4 entry finds them first; copied to
// app/code/Ledger/SageSync, Magento's psr-0 entry for app/code/ would look beside this file and
// miss them, and the compiled DI config would then break every bin/magento command. This
// fallback loads Ledger\SageSync\* from src/ and touches nothing else.
spl_autoload_register(static function (string $class): void {
    $prefix = 'Ledger\\SageSync\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
