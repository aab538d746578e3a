<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Publish;

/**
 * NATS first, the HTTPS gateway when NATS cannot be reached. Both end in the same stream with the
 * same Nats-Msg-Id, so an event that went both ways is stored once.
 */
final class FailoverPublisher implements PublisherInterface
{
    public function __construct(
        private PublisherInterface $primary,
        private PublisherInterface $fallback,
    ) {
    }

    public function publish(OutboundMessage $message): PublishAck
    {
        try {
            return $this->primary->publish($message);
        } catch (TransportException $primaryError) {
            try {
                return $this->fallback->publish($message);
            } catch (TransportException $fallbackError) {
                throw new TransportException(
                    $primaryError->getMessage() . '; fallback: ' . $fallbackError->getMessage(),
                    0,
                    $fallbackError
                );
            }
        }
    }

    public function close(): void
    {
        $this->primary->close();
        $this->fallback->close();
    }
}
