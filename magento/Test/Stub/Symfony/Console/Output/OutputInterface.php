<?php

declare(strict_types=1);

namespace Symfony\Component\Console\Output;

interface OutputInterface
{
    public function write($messages, bool $newline = false, int $options = 0);

    public function writeln($messages, int $options = 0);
}
