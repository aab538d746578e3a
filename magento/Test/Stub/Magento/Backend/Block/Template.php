<?php

declare(strict_types=1);

namespace Magento\Backend\Block;

use Magento\Backend\Block\Template\Context;
use Magento\Framework\DataObject;
use Magento\Framework\Escaper;

/** Renders "Module_Name::path.phtml" from the module's view/adminhtml/templates with $block and $escaper. */
class Template extends DataObject
{
    /** @var array<string, string> module name => module directory */
    public static array $moduleDirs = [];

    private string $template = '';

    public function __construct(?Context $context = null, array $data = [])
    {
        parent::__construct($data);
    }

    public function setTemplate($template)
    {
        $this->template = (string) $template;
        return $this;
    }

    public function getTemplate()
    {
        return $this->template;
    }

    /** Admin URLs carry the route; the real one adds the secret key. */
    public function getUrl($route = '', $params = [])
    {
        return 'https://shop.example/admin/' . trim((string) $route, '/') . '/key/0123abcd/';
    }

    public function getFormKey()
    {
        return 'F0rmK3y';
    }

    public function toHtml()
    {
        [$module, $path] = explode('::', $this->template);
        $file = self::$moduleDirs[$module] . '/view/adminhtml/templates/' . $path;
        $block = $this;
        $escaper = new Escaper();
        ob_start();
        try {
            (static function () use ($file, $block, $escaper): void {
                include $file;
            })();
        } finally {
            $html = (string) ob_get_clean();
        }
        return $html;
    }
}
