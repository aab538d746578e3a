<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Nats;

use Ledger\SageSync\Core\Publish\TransportException;

/**
 * A -ERR from the NATS server, explained. It is a transport failure for the relay (stop the batch,
 * keep the rows, try later): a refused subject or revoked key is a pairing problem, not the
 * event's, so nothing is dead-lettered for it.
 */
final class NatsServerException extends TransportException
{
    public const AUTHORIZATION = 'authorization';
    public const EXPIRED = 'expired';
    public const REVOKED = 'revoked';
    public const PUBLISH_DENIED = 'publish_denied';
    public const SUBSCRIBE_DENIED = 'subscribe_denied';
    public const OTHER = 'other';

    public function __construct(
        string $message,
        public readonly string $kind,
        public readonly string $reason,
        public readonly ?string $subject = null,
    ) {
        parent::__construct($message);
    }

    /** Reads the text of "-ERR '…'" into a message an operator can act on. */
    public static function fromServer(string $text, ?string $user): self
    {
        $text = trim($text, " '\t");
        $who = $user !== null ? ' for user ' . $user : '';
        if (preg_match('/^Permissions Violation for (.+?) (?:to|of) "?([^"]*)"?$/i', $text, $m) === 1) {
            $subject = $m[2];
            if (stripos($m[1], 'Subscription') === 0) {
                return new self(
                    'NATS refused the reply inbox subscription to "' . $subject . '"' . $who . ' (' . $text
                        . '): the inbox prefix must be the one Ledger gave at pairing',
                    self::SUBSCRIBE_DENIED,
                    $text,
                    $subject
                );
            }
            return new self(
                'NATS refused to let' . ($user !== null ? ' user ' . $user : ' this connection') . ' publish to "'
                    . $subject . '" (' . $text . '): this key may only publish its own merchant\'s subjects',
                self::PUBLISH_DENIED,
                $text,
                $subject
            );
        }
        if (stripos($text, 'Authentication Expired') !== false) {
            return new self(
                'NATS: the credentials' . $who . ' have expired (' . $text . '); pair the store with Ledger again',
                self::EXPIRED,
                $text
            );
        }
        if (stripos($text, 'Authentication Revoked') !== false) {
            return new self(
                'NATS: the credentials' . $who . ' were revoked (' . $text . '); pair the store with Ledger again',
                self::REVOKED,
                $text
            );
        }
        if (stripos($text, 'Authorization Violation') !== false) {
            return new self(
                'NATS refused the credentials' . $who . ' (' . $text . '); check the pairing (or the user and '
                    . 'password)',
                self::AUTHORIZATION,
                $text
            );
        }
        return new self('NATS server error: ' . $text, self::OTHER, $text);
    }
}
