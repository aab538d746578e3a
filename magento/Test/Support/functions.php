<?php

declare(strict_types=1);

/** Magento's translation function; the test stand-in only substitutes %1, %2 … */
function __($text, ...$arguments): string
{
    foreach ($arguments as $i => $argument) {
        $text = str_replace('%' . ($i + 1), (string) $argument, (string) $text);
    }
    return (string) $text;
}
