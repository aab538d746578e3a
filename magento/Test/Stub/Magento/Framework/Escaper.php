<?php

declare(strict_types=1);

namespace Magento\Framework;

class Escaper
{
    public function escapeHtml($data, $allowedTags = null)
    {
        return htmlspecialchars((string) $data, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    }

    public function escapeHtmlAttr($string, $escapeSingleQuote = true)
    {
        return htmlspecialchars((string) $string, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    }

    public function escapeUrl($string)
    {
        return htmlspecialchars((string) $string, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    }
}
