<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

/** Command-line input from an array and output into a string, for the CLI command tests. */
final class Console implements InputInterface, OutputInterface
{
    public string $output = '';

    public function __construct(private array $options = [])
    {
    }

    public function getOption(string $name)
    {
        return $this->options[$name] ?? null;
    }

    public function getArgument(string $name)
    {
        return null;
    }

    public function write($messages, bool $newline = false, int $options = 0)
    {
        foreach ((array) $messages as $message) {
            $this->output .= strip_tags((string) $message) . ($newline ? "\n" : '');
        }
    }

    public function writeln($messages, int $options = 0)
    {
        $this->write($messages, true, $options);
    }
}
