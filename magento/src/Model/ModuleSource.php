<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model;

use Ledger\SageSync\Core\Outbox\SourceInfo;
use Magento\Framework\App\ProductMetadataInterface;

/** The envelope's source: this module's version and the Magento version and edition. */
class ModuleSource implements SourceInfo
{
    public const MODULE_VERSION = '0.2.0';

    private ?array $source = null;

    public function __construct(private ProductMetadataInterface $productMetadata)
    {
    }

    public function source(): array
    {
        return $this->source ??= [
            'module_version' => self::MODULE_VERSION,
            'magento_version' => mb_substr((string) $this->productMetadata->getVersion() ?: 'unknown', 0, 64),
            'magento_edition' => mb_substr((string) $this->productMetadata->getEdition(), 0, 64) ?: null,
        ];
    }
}
