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

    /** Like the real one for what the templates pass: non-alphanumerics as \uXXXX. */
    public function escapeJs($string)
    {
        return (string) preg_replace_callback(
            '/[^a-z0-9,._]/iu',
            static fn (array $m): string => sprintf('\\u%04X', mb_ord($m[0], 'UTF-8')),
            (string) $string
        );
    }
}
