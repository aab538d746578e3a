<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Magento\Framework\App\Config\ReinitableConfigInterface;
use Magento\Framework\App\Config\Storage\WriterInterface;
use Magento\Framework\Encryption\EncryptorInterface;

/**
 * Scope config from an array (defaults read from etc/config.xml), a reversible "encryptor", and
 * the config writer writing into the same array (saved values are read back after reinit()).
 */
final class ArrayConfig implements ReinitableConfigInterface, EncryptorInterface, WriterInterface
{
    public array $values;

    public int $reinits = 0;

    public function __construct(array $values = [])
    {
        $this->values = $values + self::defaults();
    }

    /** @return array<string, string> path => value, from etc/config.xml */
    public static function defaults(): array
    {
        $xml = simplexml_load_file(dirname(__DIR__, 2) . '/etc/config.xml');
        $out = [];
        foreach ($xml->default->children() as $section) {
            foreach ($section->children() as $group) {
                foreach ($group->children() as $field) {
                    $out[$section->getName() . '/' . $group->getName() . '/' . $field->getName()] = (string) $field;
                }
            }
        }
        return $out;
    }

    public function getValue($path, $scopeType = self::SCOPE_TYPE_DEFAULT, $scopeCode = null)
    {
        return $this->values[$path] ?? null;
    }

    public function isSetFlag($path, $scopeType = self::SCOPE_TYPE_DEFAULT, $scopeCode = null)
    {
        return (bool) ($this->values[$path] ?? false);
    }

    public function encrypt($data)
    {
        return 'enc:' . base64_encode((string) $data);
    }

    public function decrypt($data)
    {
        return str_starts_with((string) $data, 'enc:') ? base64_decode(substr((string) $data, 4)) : '';
    }

    public function save($path, $value, $scope = self::SCOPE_TYPE_DEFAULT, $scopeId = 0)
    {
        $this->values[$path] = $value;
    }

    public function delete($path, $scope = self::SCOPE_TYPE_DEFAULT, $scopeId = 0)
    {
        unset($this->values[$path]);
    }

    public function reinit()
    {
        $this->reinits++;
        return $this;
    }
}
