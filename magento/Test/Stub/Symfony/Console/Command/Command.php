<?php

declare(strict_types=1);

namespace Symfony\Component\Console\Command;

use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

class Command
{
    private ?string $name = null;
    private string $description = '';

    /** @var array<string, array{mode: int, default: mixed}> */
    public array $options = [];

    public function __construct(?string $name = null)
    {
        if ($name !== null) {
            $this->setName($name);
        }
        $this->configure();
    }

    protected function configure()
    {
    }

    protected function execute(InputInterface $input, OutputInterface $output)
    {
        return 0;
    }

    public function run(InputInterface $input, OutputInterface $output): int
    {
        return (int) $this->execute($input, $output);
    }

    public function setName(string $name)
    {
        $this->name = $name;
        return $this;
    }

    public function getName(): ?string
    {
        return $this->name;
    }

    public function setDescription(string $description)
    {
        $this->description = $description;
        return $this;
    }

    public function getDescription(): string
    {
        return $this->description;
    }

    public function addOption(
        string $name,
        $shortcut = null,
        ?int $mode = null,
        string $description = '',
        $default = null
    ) {
        $this->options[$name] = ['mode' => (int) $mode, 'default' => $default];
        return $this;
    }
}
