<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use PHPUnit\Framework\TestCase;

/**
 * registration.php on its own, as Magento loads it for a copy in app/code/Ledger/SageSync
 * (app/etc/NonComposerComponentRegistration.php): Magento's psr-0 entry for app/code/ would look
 * for Ledger\SageSync\X in X.php beside registration.php, but the classes are in src/. Found on a
 * real Magento 2.4.7-p3: without an autoloader for src/, the compiled DI metadata names a module
 * class that cannot be loaded and every bin/magento command (not only the module's) dies with
 * `Class "Ledger\SageSync\Core\Outbox\OutboxStatus" not found`.
 *
 * Each case runs in a fresh PHP process with no autoloader but a stand-in ComponentRegistrar.
 */
final class RegistrationTest extends TestCase
{
    public function testRegistersTheModuleUnderItsOwnDirectory(): void
    {
        $out = $this->runRegistration('echo json_encode(\Magento\Framework\Component\ComponentRegistrar::$seen);');
        self::assertSame([['module', 'Ledger_SageSync', dirname(__DIR__, 3)]], json_decode($out, true));
    }

    public function testLoadsTheModuleClassesFromSrcWithoutComposer(): void
    {
        $out = $this->runRegistration(
            'echo json_encode([enum_exists(\Ledger\SageSync\Core\Outbox\OutboxStatus::class),'
            . ' class_exists(\Ledger\SageSync\Core\Uuid::class),'
            . ' interface_exists(\Ledger\SageSync\Core\Outbox\OutboxStore::class),'
            . ' class_exists(\Ledger\SageSync\NoSuchClass::class),'
            . ' class_exists(\Other\Vendor\Thing::class)]);'
        );
        self::assertSame([true, true, true, false, false], json_decode($out, true), $out);
    }

    private function runRegistration(string $then): string
    {
        $registration = var_export(dirname(__DIR__, 3) . '/registration.php', true);
        $code = 'namespace Magento\Framework\Component { final class ComponentRegistrar {'
            . ' public const MODULE = "module"; public static array $seen = [];'
            . ' public static function register($type, $name, $path) { self::$seen[] = [$type, $name, $path]; } } }'
            . ' namespace { require ' . $registration . '; ' . $then . ' }';
        $command = escapeshellarg(PHP_BINARY) . ' -d error_reporting=-1 -d display_errors=stderr -r '
            . escapeshellarg($code) . ' 2>&1';
        $out = shell_exec($command);
        self::assertIsString($out);
        return trim($out);
    }
}
