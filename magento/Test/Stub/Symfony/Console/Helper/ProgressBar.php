<?php

declare(strict_types=1);

namespace Symfony\Component\Console\Helper;

use Symfony\Component\Console\Output\OutputInterface;

/** The few ProgressBar methods the backfill calls; each redraw is written as one line. */
final class ProgressBar
{
    private int $step = 0;
    private string $message = '';

    public function __construct(private OutputInterface $output, private int $max = 0)
    {
    }

    public function setFormat(string $format): void
    {
    }

    public function setMessage(string $message, string $name = 'message'): void
    {
        $this->message = $message;
    }

    public function start(?int $max = null, int $startAt = 0): void
    {
        $this->max = $max ?? $this->max;
        $this->step = $startAt;
        $this->draw();
    }

    public function advance(int $step = 1): void
    {
        $this->step += $step;
        $this->draw();
    }

    public function finish(): void
    {
        $this->draw();
    }

    public function getProgress(): int
    {
        return $this->step;
    }

    private function draw(): void
    {
        $this->output->writeln(sprintf('bar %d/%d %s', $this->step, $this->max, $this->message));
    }
}
