<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Unit\Glue;

use DOMDocument;
use DOMXPath;
use Ledger\SageSync\Model\Outbox\DbOutboxStore;
use Ledger\SageSync\Model\Pairing\ConfigPairingStore;
use Ledger\SageSync\Model\Status\DbStatusSink;
use PHPUnit\Framework\TestCase;

/**
 * What Magento would only notice at setup:upgrade, di:compile or page load, checked without
 * Magento: XML well-formed, every class named in the configuration exists, events are global,
 * the declarative schema matches its whitelist and the SQL the stores write, grid columns, config
 * paths, ACL, templates and JS referenced from XML exist.
 */
final class ModuleFilesTest extends TestCase
{
    private static function root(): string
    {
        return dirname(__DIR__, 3);
    }

    private static function xml(string $path): DOMXPath
    {
        $document = new DOMDocument();
        self::assertTrue(@$document->load(self::root() . '/' . $path), $path . ' is well-formed XML');
        return new DOMXPath($document);
    }

    /** @return list<string> */
    private static function xmlFiles(): array
    {
        $files = [];
        $iterator = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator(self::root() . '/etc'));
        $view = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator(self::root() . '/view'));
        foreach ([$iterator, $view] as $it) {
            foreach ($it as $file) {
                if ($file->isFile() && $file->getExtension() === 'xml') {
                    $files[] = substr($file->getPathname(), strlen(self::root()) + 1);
                }
            }
        }
        sort($files);
        return $files;
    }

    public function testAllXmlIsWellFormed(): void
    {
        $files = self::xmlFiles();
        self::assertCount(16, $files);
        foreach ($files as $file) {
            self::xml($file);
        }
        $whitelist = (string) file_get_contents(self::root() . '/etc/db_schema_whitelist.json');
        json_decode($whitelist, true, 16, JSON_THROW_ON_ERROR);
    }

    public function testEveryModuleClassNamedInConfigurationExists(): void
    {
        $found = [];
        foreach (self::xmlFiles() as $file) {
            $text = (string) file_get_contents(self::root() . '/' . $file);
            preg_match_all('/Ledger\\\\SageSync\\\\[A-Za-z\\\\]+/', $text, $matches);
            foreach ($matches[0] as $class) {
                $class = (string) preg_replace('/\\\\Proxy$/', '', $class);
                $found[$class] = true;
                self::assertTrue(
                    class_exists($class) || interface_exists($class),
                    $file . ' names ' . $class . ', which does not exist'
                );
            }
        }
        self::assertGreaterThan(20, count($found));
    }

    public function testObserversAreGlobalAndOnTheAgreedEvents(): void
    {
        self::assertFileDoesNotExist(self::root() . '/etc/adminhtml/events.xml');
        self::assertFileDoesNotExist(self::root() . '/etc/frontend/events.xml');
        $events = [];
        foreach (self::xml('etc/events.xml')->query('//event') as $event) {
            $events[] = $event->getAttribute('name');
            foreach ($event->getElementsByTagName('observer') as $observer) {
                $class = $observer->getAttribute('instance');
                self::assertTrue(method_exists($class, 'execute'), $class);
            }
        }
        self::assertSame([
            'sales_order_invoice_save_before', 'sales_order_invoice_save_after',
            'sales_order_invoice_save_commit_after',
            'sales_order_creditmemo_save_before', 'sales_order_creditmemo_save_after',
            'sales_order_creditmemo_save_commit_after', 'customer_save_after', 'customer_address_save_after',
            'catalog_product_save_after',
        ], $events);
    }

    public function testCronJobsAndCommands(): void
    {
        $jobs = [];
        foreach (self::xml('etc/crontab.xml')->query('//job') as $job) {
            self::assertTrue(method_exists($job->getAttribute('instance'), $job->getAttribute('method')));
            $jobs[$job->getAttribute('name')] = $job->getElementsByTagName('schedule')->item(0)->textContent;
        }
        self::assertSame('* * * * *', $jobs['ledger_sage_sync_publish']);
        self::assertSame('* * * * *', $jobs['ledger_sage_sync_pairing'], 'a waiting code is collected within a minute');
        self::assertArrayHasKey('ledger_sage_sync_status', $jobs);
        self::assertSame(1, self::xml('etc/cron_groups.xml')->query('//group[@id="ledger_sage_sync"]')->length);
        $list = '//type[@name="Magento\Framework\Console\CommandListInterface"]//item';
        $commands = self::xml('etc/di.xml')->query($list);
        self::assertSame(8, $commands->length);
        $names = [];
        foreach ($commands as $item) {
            $class = $item->textContent;
            $names[] = (new \ReflectionClass($class))->newInstanceWithoutConstructor() instanceof
                \Symfony\Component\Console\Command\Command ? $class : null;
        }
        self::assertNotContains(null, $names);
        foreach (['PairingStart', 'PairingPoll', 'PairingStatus', 'PairingDisconnect'] as $command) {
            self::assertContains('Ledger\\SageSync\\Console\\Command\\' . $command, $names);
        }
    }

    public function testDeclarativeSchemaMatchesWhitelistAndStores(): void
    {
        $schema = self::xml('etc/db_schema.xml');
        $whitelist = json_decode((string) file_get_contents(self::root() . '/etc/db_schema_whitelist.json'), true);
        $tables = [];
        foreach ($schema->query('/schema/table') as $table) {
            $name = $table->getAttribute('name');
            $columns = [];
            foreach ($schema->query('column', $table) as $column) {
                $columns[$column->getAttribute('name')] = true;
            }
            $tables[$name] = $columns;
            self::assertSame($columns, $whitelist[$name]['column'], $name . ' columns vs whitelist');
            foreach (['index', 'constraint'] as $kind) {
                $ids = [];
                foreach ($schema->query($kind, $table) as $element) {
                    $ids[$element->getAttribute('referenceId')] = true;
                }
                self::assertSame($ids, $whitelist[$name][$kind] ?? [], $name . ' ' . $kind . ' vs whitelist');
            }
        }
        self::assertSame(array_keys($tables), array_keys($whitelist));
        foreach (DbOutboxStore::INSERT_COLUMNS as $column) {
            self::assertArrayHasKey($column, $tables[DbOutboxStore::TABLE]);
        }
        foreach (['js_stream', 'js_seq', 'js_duplicate', 'published_at', 'transport'] as $column) {
            self::assertArrayHasKey($column, $tables[DbOutboxStore::TABLE]);
        }
        foreach (DbStatusSink::TABLES as [$statusTable, $idColumn, $grid]) {
            $expected = [$idColumn, 'status', 'message', 'sage_ref', 'sage_id', 'feed_state', 'updated_at'];
            self::assertSame($expected, array_keys($tables[$statusTable]));
            self::assertSame(['sage_status', 'sage_status_message'], array_keys($tables[$grid]));
        }
        $unique = $schema->query('//table[@name="ledger_sage_outbox"]/constraint[@xsi:type="unique"]/column');
        $names = array_map(static fn ($c) => $c->getAttribute('name'), iterator_to_array($unique));
        self::assertSame(['event_id', 'dedupe_key'], $names);
    }

    public function testGridColumnsAreJoinedAndListed(): void
    {
        $di = self::xml('etc/di.xml');
        $grids = [
            'Magento\Sales\Model\ResourceModel\Order\Invoice\Grid' => 'ledger_sage_invoice_status',
            'CreditmemoGridAggregator' => 'ledger_sage_creditmemo_status',
        ];
        foreach ($grids as $virtualType => $table) {
            $type = $di->query('//virtualType[@name="' . $virtualType . '"]')->item(0);
            self::assertNotNull($type, $virtualType);
            self::assertSame('Magento\Sales\Model\ResourceModel\Grid', $type->getAttribute('type'));
            $column = $di->query('.//item[@name="sage_status"]', $type)->item(0)->textContent;
            self::assertSame($table . '.status', $column);
            $join = $di->query('.//item[@name="' . $table . '"]/item[@name="table"]', $type)->item(0)->textContent;
            self::assertSame($table, $join);
        }
        foreach (['invoice', 'creditmemo'] as $grid) {
            $listing = self::xml('view/adminhtml/ui_component/sales_order_' . $grid . '_grid.xml');
            $path = '//columns[@name="sales_order_' . $grid . '_columns"]/column[@name="sage_status"]';
            $column = $listing->query($path)->item(0);
            self::assertNotNull($column);
            self::assertSame('Ledger_SageSync/js/grid/columns/sage-status', $column->getAttribute('component'));
            self::assertFileExists(self::root() . '/view/adminhtml/web/js/grid/columns/sage-status.js');
            $template = $listing->query('.//bodyTmpl', $column)->item(0)->textContent;
            $file = substr($template, strlen('Ledger_SageSync/')) . '.html';
            self::assertFileExists(self::root() . '/view/adminhtml/web/template/' . $file);
        }
    }

    public function testLayoutsPointAtExistingTemplates(): void
    {
        $handles = ['sales_order_invoice_view' => 'invoice', 'sales_order_creditmemo_view' => 'creditmemo'];
        foreach ($handles as $handle => $type) {
            $layout = self::xml('view/adminhtml/layout/' . $handle . '.xml');
            $block = $layout->query('//referenceBlock[@name="order_info"]/block')->item(0);
            self::assertNotNull($block);
            [, $template] = explode('::', $block->getAttribute('template'));
            self::assertFileExists(self::root() . '/view/adminhtml/templates/' . $template);
            self::assertSame($type, $layout->query('.//argument[@name="entity_type"]', $block)->item(0)->textContent);
        }
    }

    public function testTheSalesGridsTakeTheirFiltersFromTheUrl(): void
    {
        $grids = [
            'sales_invoice_index' => 'sales_order_invoice_grid',
            'sales_creditmemo_index' => 'sales_order_creditmemo_grid',
        ];
        foreach ($grids as $handle => $namespace) {
            $layout = self::xml('view/adminhtml/layout/' . $handle . '.xml');
            $block = $layout->query('//referenceContainer[@name="content"]/block')->item(0);
            self::assertNotNull($block, $handle);
            [, $template] = explode('::', $block->getAttribute('template'));
            $script = (string) file_get_contents(self::root() . '/view/adminhtml/templates/' . $template);
            self::assertStringContainsString('Magento_Ui/js/grid/url-filter-applier', $script);
            self::assertSame(
                $namespace,
                $layout->query('.//argument[@name="listing_namespace"]', $block)->item(0)->textContent
            );
            self::assertFileExists(self::root() . '/view/adminhtml/ui_component/' . $namespace . '.xml');
        }
    }

    public function testConfigurationPathsAclAndSecrets(): void
    {
        $system = self::xml('etc/adminhtml/system.xml');
        $defaults = array_keys(\Ledger\SageSync\Test\Support\ArrayConfig::defaults());
        $fields = [];
        foreach ($system->query('//section/group/field') as $field) {
            if ($field->getAttribute('type') === '' && $system->query('frontend_model', $field)->length === 1) {
                continue; // display only (the pairing panel): no value of its own
            }
            $group = $field->parentNode;
            $section = $group->parentNode;
            $fields[] = $section->getAttribute('id') . '/' . $group->getAttribute('id') . '/'
                . $field->getAttribute('id');
        }
        sort($fields);
        sort($defaults);
        self::assertSame($defaults, $fields, 'every field has a default in config.xml');
        $source = (string) file_get_contents(self::root() . '/src/Model/Config.php');
        $pattern = "/value\\('([a-z_\\/]+)'\\)|secret\\('([a-z_\\/]+)'\\)|PREFIX \\. '([a-z_\\/]+)'/";
        preg_match_all($pattern, $source, $used);
        foreach (array_filter(array_merge($used[1], $used[2], $used[3])) as $path) {
            self::assertContains('ledger_sage_sync/' . $path, $fields, 'Config reads ' . $path);
        }
        $resource = $system->query('//section/resource')->item(0)->textContent;
        self::assertSame(1, self::xml('etc/acl.xml')->query('//resource[@id="' . $resource . '"]')->length);
        $sensitive = [];
        foreach (self::xml('etc/di.xml')->query('//argument[@name="sensitive"]/item') as $item) {
            $sensitive[] = $item->getAttribute('name');
        }
        // The pairing's own paths are written by the module, never typed: no admin field, secrets sensitive.
        foreach (ConfigPairingStore::PATHS as $path) {
            self::assertNotContains($path, $fields, $path);
            self::assertNotContains($path, $defaults, $path);
        }
        self::assertContains(ConfigPairingStore::SECRET, $sensitive);
        self::assertContains(ConfigPairingStore::POLL_SECRET, $sensitive);
        foreach ($system->query('//field[@type="obscure"]') as $field) {
            $path = 'ledger_sage_sync/' . $field->parentNode->getAttribute('id') . '/' . $field->getAttribute('id');
            self::assertContains($path, $sensitive, $path . ' must stay out of config dumps');
            $backend = $system->query('backend_model', $field)->item(0)->textContent;
            self::assertSame('Magento\Config\Model\Config\Backend\Encrypted', $backend);
        }
    }

    public function testPackageAndRegistration(): void
    {
        $composer = json_decode((string) file_get_contents(self::root() . '/composer.json'), true);
        self::assertSame('ledger/module-sage-sync', $composer['name']);
        self::assertSame('magento2-module', $composer['type']);
        self::assertSame('~8.1.0||~8.2.0||~8.3.0', $composer['require']['php']);
        self::assertSame(['Ledger\\SageSync\\' => 'src/'], $composer['autoload']['psr-4']);
        self::assertSame(['registration.php'], $composer['autoload']['files']);
        $registration = (string) file_get_contents(self::root() . '/registration.php');
        self::assertStringContainsString("'Ledger_SageSync'", $registration);
        self::assertSame(1, self::xml('etc/module.xml')->query('//module[@name="Ledger_SageSync"]')->length);
        $attributes = (string) file_get_contents(self::root() . '/.gitattributes');
        self::assertStringContainsString('/Test export-ignore', $attributes);
    }

    public function testPairingControllersRoutesAndAcl(): void
    {
        $route = self::xml('etc/adminhtml/routes.xml')->query('//router[@id="admin"]/route')->item(0);
        self::assertSame('ledger_sage_sync', $route->getAttribute('frontName'));
        $module = $route->getElementsByTagName('module')->item(0);
        self::assertSame('Ledger_SageSync', $module->getAttribute('name'));
        self::assertSame('Magento_Backend', $module->getAttribute('before'));
        $acl = self::xml('etc/acl.xml');
        $nested = '//resource[@id="Ledger_SageSync::config"]/resource[@id="Ledger_SageSync::pairing"]';
        self::assertSame(1, $acl->query($nested)->length);
        foreach (['Start', 'Check', 'Disconnect'] as $action) {
            $class = 'Ledger\\SageSync\\Controller\\Adminhtml\\Pairing\\' . $action;
            self::assertTrue(is_subclass_of($class, \Magento\Backend\App\Action::class), $class);
            self::assertTrue(
                is_subclass_of($class, \Magento\Framework\App\Action\HttpPostActionInterface::class),
                $class . ' is POST only, so the admin form key is checked'
            );
            self::assertSame('Ledger_SageSync::pairing', $class::ADMIN_RESOURCE);
        }
        $system = self::xml('etc/adminhtml/system.xml');
        $panel = $system->query('//group[@id="pairing"]/field[@id="status"]/frontend_model')->item(0);
        self::assertSame('Ledger\\SageSync\\Block\\Adminhtml\\System\\Config\\Pairing', $panel->textContent);
        self::assertSame(1, $system->query('//group[@id="pairing"]/field[@id="gateway_url"]')->length);
        self::assertFileExists(self::root() . '/view/adminhtml/web/js/pairing.js');
    }
}
