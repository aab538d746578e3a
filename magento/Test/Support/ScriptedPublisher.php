<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Ledger\SageSync\Core\Publish\OutboundMessage;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Publish\PublisherInterface;
use Throwable;

/** Answers each publish with the next scripted outcome (an ack, or an exception to throw). */
final class ScriptedPublisher implements PublisherInterface
{
    /** @var list<OutboundMessage> */
    public array $sent = [];

    /** @var list<PublishAck|Throwable> */
    private array $script;

    private int $sequence = 0;

    /** Runs inside the next publish, before it returns (to interleave a concurrent save). */
    public ?\Closure $during = null;

    public function __construct(PublishAck|Throwable ...$script)
    {
        $this->script = $script;
    }

    public function then(PublishAck|Throwable ...$outcomes): void
    {
        array_push($this->script, ...$outcomes);
    }

    public function publish(OutboundMessage $message): PublishAck
    {
        $this->sent[] = $message;
        if ($this->during !== null) {
            $during = $this->during;
            $this->during = null;
            $during();
        }
        $outcome = array_shift($this->script) ?? new PublishAck('MAGENTO_EVENTS', ++$this->sequence, false, 'nats');
        if ($outcome instanceof Throwable) {
            throw $outcome;
        }
        return $outcome;
    }

    public function close(): void
    {
    }

    /** @return list<string> event types in the order they were sent */
    public function sentTypes(): array
    {
        return array_map(
            static fn (OutboundMessage $m): string => json_decode($m->body, true)['event_type'],
            $this->sent
        );
    }
}
