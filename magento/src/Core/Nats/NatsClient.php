<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Nats;

use Closure;
use JsonException;
use Ledger\SageSync\Core\Publish\PublishAck;
use Ledger\SageSync\Core\Publish\PublishException;
use Ledger\SageSync\Core\Publish\RejectedException;
use Ledger\SageSync\Core\Publish\TransportException;

/**
 * A small NATS client over one socket, enough for JetStream publishing with acknowledgements:
 * INFO/CONNECT (user/password or token, optional TLS upgrade), PING/PONG, HPUB with headers,
 * request/reply on one wildcard inbox subscription, and the JetStream PubAck.
 *
 * Protocol: https://docs.nats.io/reference/reference-protocols/nats-protocol
 */
final class NatsClient
{
    public const VERSION = '1.0.0';

    /** @var resource|null */
    private $socket = null;
    private string $buffer = '';

    /** @var array<string, mixed> */
    private array $info = [];
    private ?string $inbox = null;
    private int $requests = 0;
    private Closure $tokens;

    /** @var Closure(NatsOptions): resource|null */
    private ?Closure $connector;

    /**
     * @param Closure|null $connector returns a connected stream for the options (tests use a socket pair)
     * @param Closure|null $tokens returns a random subject token for the inbox (tests make it predictable)
     */
    public function __construct(
        private NatsOptions $options,
        ?Closure $connector = null,
        ?Closure $tokens = null,
    ) {
        $this->connector = $connector;
        $this->tokens = $tokens ?? static fn (): string => self::randomToken();
    }

    public function __destruct()
    {
        $this->close();
    }

    public function isConnected(): bool
    {
        return $this->socket !== null;
    }

    /** @return array<string, mixed> the server's INFO */
    public function serverInfo(): array
    {
        return $this->info;
    }

    public function connect(): void
    {
        if ($this->socket !== null) {
            return;
        }
        $this->buffer = '';
        $this->inbox = null;
        $this->socket = $this->openSocket();
        try {
            $deadline = microtime(true) + $this->options->timeout;
            $line = $this->readLine($deadline);
            if (!str_starts_with($line, 'INFO ')) {
                throw new TransportException('not a NATS server (expected INFO, got "' . substr($line, 0, 40) . '")');
            }
            $this->info = $this->decode(substr($line, 5));
            if ($this->options->tls || !empty($this->info['tls_required'])) {
                $this->startTls();
            }
            if (empty($this->info['headers'])) {
                throw new TransportException('the NATS server does not support headers (2.2 or newer needed)');
            }
            $this->write('CONNECT ' . $this->encode($this->connectOptions()) . "\r\nPING\r\n");
            while (true) {
                $line = $this->readLine($deadline);
                if ($line === 'PONG') {
                    return;
                }
                $this->handleControl($line);
            }
        } catch (TransportException $e) {
            $this->close();
            throw $e;
        }
    }

    public function close(): void
    {
        if ($this->socket !== null) {
            @fclose($this->socket);
        }
        $this->socket = null;
        $this->buffer = '';
        $this->inbox = null;
    }

    /**
     * Publishes with a reply inbox and waits for the reply.
     *
     * @param array<string, string> $headers
     */
    public function request(string $subject, string $body, array $headers = [], ?float $timeout = null): NatsMessage
    {
        $this->connect();
        $this->assertSubject($subject);
        if ($this->inbox === null) {
            $this->inbox = $this->options->inboxPrefix . '.' . ($this->tokens)();
            $this->write('SUB ' . $this->inbox . ".* 1\r\n");
        }
        $reply = $this->inbox . '.' . (++$this->requests);
        $frame = $this->frame($subject, $reply, $body, $headers);
        $this->write($frame);
        $deadline = microtime(true) + ($timeout ?? $this->options->timeout);
        try {
            while (true) {
                $message = $this->readMessage($deadline);
                if ($message !== null && $message->subject === $reply) {
                    return $message;
                }
            }
        } catch (TransportException $e) {
            $this->close();
            throw $e;
        }
    }

    /**
     * Publishes into a JetStream stream and returns its PubAck.
     *
     * @param array<string, string> $headers
     */
    public function jetStreamPublish(string $subject, string $body, array $headers = []): PublishAck
    {
        $reply = $this->request($subject, $body, $headers);
        if ($reply->status === 503) {
            throw new TransportException('no JetStream stream stores subject ' . $subject . ' (503 no responders)');
        }
        if ($reply->status !== null && $reply->status >= 300) {
            throw new PublishException('JetStream answered ' . $reply->status . ' ' . $reply->statusText);
        }
        $ack = $this->decodeReply($reply->body);
        if (!isset($ack['stream'], $ack['seq'])) {
            throw new PublishException('JetStream reply is not a PubAck: ' . substr($reply->body, 0, 200));
        }
        return new PublishAck((string) $ack['stream'], (int) $ack['seq'], (bool) ($ack['duplicate'] ?? false), 'nats');
    }

    /**
     * A JetStream API request ($JS.API.…) with a JSON body; returns the decoded answer.
     *
     * @param array<string, mixed> $request
     * @return array<string, mixed>
     */
    public function jetStreamApi(string $subject, array $request): array
    {
        $reply = $this->request($subject, $request === [] ? '' : $this->encode($request));
        if ($reply->status === 503) {
            throw new TransportException('JetStream is not enabled for this account (503 no responders)');
        }
        return $this->decodeReply($reply->body);
    }

    /** @return array<string, mixed> */
    private function decodeReply(string $body): array
    {
        try {
            $data = json_decode($body, true, 64, JSON_THROW_ON_ERROR);
        } catch (JsonException) {
            throw new PublishException('unreadable JetStream reply: ' . substr($body, 0, 200));
        }
        if (!is_array($data)) {
            throw new PublishException('unreadable JetStream reply: ' . substr($body, 0, 200));
        }
        if (isset($data['error'])) {
            $error = is_array($data['error']) ? $data['error'] : ['description' => (string) $data['error']];
            throw new PublishException(sprintf(
                'JetStream error %s: %s',
                (string) ($error['err_code'] ?? $error['code'] ?? '?'),
                (string) ($error['description'] ?? 'unknown')
            ));
        }
        return $data;
    }

    /** @return resource */
    private function openSocket()
    {
        if ($this->connector !== null) {
            return ($this->connector)($this->options);
        }
        $host = $this->options->host;
        $address = 'tcp://' . (str_contains($host, ':') ? '[' . $host . ']' : $host) . ':' . $this->options->port;
        $context = stream_context_create(['ssl' => $this->sslOptions()]);
        $errno = 0;
        $error = '';
        $socket = @stream_socket_client(
            $address,
            $errno,
            $error,
            $this->options->connectTimeout,
            STREAM_CLIENT_CONNECT,
            $context
        );
        if ($socket === false) {
            throw new TransportException(
                'cannot connect to NATS at ' . $this->hostPort() . ': ' . ($error ?: 'error ' . $errno)
            );
        }
        return $socket;
    }

    /** @return array<string, mixed> */
    private function sslOptions(): array
    {
        $ssl = [
            'verify_peer' => true,
            'verify_peer_name' => true,
            'peer_name' => $this->options->host,
            'SNI_enabled' => true,
        ];
        if ($this->options->caFile !== null) {
            $ssl['cafile'] = $this->options->caFile;
        }
        return $ssl;
    }

    private function startTls(): void
    {
        foreach ($this->sslOptions() as $key => $value) {
            stream_context_set_option($this->socket, 'ssl', $key, $value);
        }
        $method = STREAM_CRYPTO_METHOD_TLSv1_2_CLIENT;
        if (defined('STREAM_CRYPTO_METHOD_TLSv1_3_CLIENT')) {
            $method |= STREAM_CRYPTO_METHOD_TLSv1_3_CLIENT;
        }
        stream_set_timeout($this->socket, (int) ceil($this->options->timeout));
        if (@stream_socket_enable_crypto($this->socket, true, $method) !== true) {
            $error = error_get_last();
            throw new TransportException('TLS handshake with ' . $this->hostPort() . ' failed'
                . ($error !== null ? ': ' . $error['message'] : ''));
        }
    }

    /** @return array<string, mixed> */
    private function connectOptions(): array
    {
        $options = [
            'verbose' => false,
            'pedantic' => false,
            'tls_required' => $this->options->tls || !empty($this->info['tls_required']),
            'name' => $this->options->name,
            'lang' => 'php',
            'version' => self::VERSION,
            'protocol' => 1,
            'headers' => true,
            'no_responders' => true,
        ];
        if ($this->options->token !== null) {
            $options['auth_token'] = $this->options->token;
        } elseif ($this->options->user !== null) {
            $options['user'] = $this->options->user;
            $options['pass'] = (string) $this->options->password;
        }
        return $options;
    }

    /** @param array<string, string> $headers */
    private function frame(string $subject, string $reply, string $body, array $headers): string
    {
        $limit = (int) ($this->info['max_payload'] ?? 1048576);
        if ($headers === []) {
            if (strlen($body) > $limit) {
                throw new RejectedException('message of ' . strlen($body) . ' bytes exceeds the limit of ' . $limit);
            }
            return 'PUB ' . $subject . ' ' . $reply . ' ' . strlen($body) . "\r\n" . $body . "\r\n";
        }
        $block = "NATS/1.0\r\n";
        foreach ($headers as $name => $value) {
            $name = (string) $name;
            if (preg_match('/^[!-9;-~]+$/D', $name) !== 1 || preg_match('/[\r\n]/', $value) === 1) {
                throw new RejectedException('invalid NATS header "' . $name . '"');
            }
            $block .= $name . ': ' . $value . "\r\n";
        }
        $block .= "\r\n";
        $total = strlen($block) + strlen($body);
        if ($total > $limit) {
            throw new RejectedException('message of ' . $total . ' bytes exceeds the server limit of ' . $limit);
        }
        return 'HPUB ' . $subject . ' ' . $reply . ' ' . strlen($block) . ' ' . $total . "\r\n"
            . $block . $body . "\r\n";
    }

    /** Reads one protocol operation; returns the message for MSG/HMSG, null for control lines. */
    private function readMessage(float $deadline): ?NatsMessage
    {
        $line = $this->readLine($deadline);
        if (str_starts_with($line, 'MSG ')) {
            $args = preg_split('/\s+/', trim(substr($line, 4)));
            [$subject, $reply, $size] = count($args) === 4
                ? [$args[0], $args[2], $args[3]]
                : [$args[0], null, $args[2] ?? '0'];
            $body = $this->readPayload((int) $size, $deadline);
            return new NatsMessage($subject, $reply, $body);
        }
        if (str_starts_with($line, 'HMSG ')) {
            $args = preg_split('/\s+/', trim(substr($line, 5)));
            if (count($args) === 5) {
                [$subject, , $reply, $headerSize, $totalSize] = $args;
            } else {
                [$subject, , $headerSize, $totalSize] = $args + [null, null, '0', '0'];
                $reply = null;
            }
            $payload = $this->readPayload((int) $totalSize, $deadline);
            [$status, $text, $headers] = self::parseHeaders(substr($payload, 0, (int) $headerSize));
            $body = (string) substr($payload, (int) $headerSize);
            return new NatsMessage((string) $subject, $reply, $body, $headers, $status, $text);
        }
        $this->handleControl($line);
        return null;
    }

    private function handleControl(string $line): void
    {
        if ($line === 'PING') {
            $this->write("PONG\r\n");
        } elseif ($line === '+OK' || $line === 'PONG' || $line === '') {
            return;
        } elseif (str_starts_with($line, 'INFO ')) {
            $this->info = array_merge($this->info, $this->decode(substr($line, 5)));
        } elseif (str_starts_with($line, '-ERR')) {
            // A refusal arrives instead of the PubAck; surface it now rather than after the timeout.
            $this->close();
            $user = $this->options->token === null ? $this->options->user : null;
            throw NatsServerException::fromServer(substr($line, 4), $user);
        } else {
            throw new TransportException('unexpected NATS protocol line "' . substr($line, 0, 60) . '"');
        }
    }

    /** @return array{0: ?int, 1: string, 2: array<string, list<string>>} */
    public static function parseHeaders(string $block): array
    {
        $lines = explode("\r\n", rtrim($block, "\r\n"));
        $first = array_shift($lines) ?? '';
        if (!str_starts_with($first, 'NATS/1.0')) {
            throw new TransportException('malformed NATS header block');
        }
        $rest = trim(substr($first, 8));
        $status = null;
        $text = '';
        if ($rest !== '') {
            $parts = explode(' ', $rest, 2);
            $status = (int) $parts[0];
            $text = $parts[1] ?? '';
        }
        $headers = [];
        foreach ($lines as $headerLine) {
            if ($headerLine === '' || !str_contains($headerLine, ':')) {
                continue;
            }
            [$name, $value] = explode(':', $headerLine, 2);
            $headers[trim($name)][] = trim($value);
        }
        return [$status, $text, $headers];
    }

    private function readLine(float $deadline): string
    {
        while (($end = strpos($this->buffer, "\r\n")) === false) {
            $this->fill($deadline);
        }
        $line = substr($this->buffer, 0, $end);
        $this->buffer = (string) substr($this->buffer, $end + 2);
        return $line;
    }

    private function readPayload(int $size, float $deadline): string
    {
        while (strlen($this->buffer) < $size + 2) {
            $this->fill($deadline);
        }
        $payload = substr($this->buffer, 0, $size);
        $this->buffer = (string) substr($this->buffer, $size + 2);
        return $payload;
    }

    private function fill(float $deadline): void
    {
        if ($this->socket === null) {
            throw new TransportException('not connected to NATS');
        }
        $remaining = $deadline - microtime(true);
        if ($remaining <= 0) {
            throw new TransportException('timed out waiting for NATS at ' . $this->hostPort());
        }
        $seconds = (int) floor($remaining);
        stream_set_timeout($this->socket, $seconds, (int) (($remaining - $seconds) * 1000000));
        $chunk = @fread($this->socket, 65536);
        if ($chunk === false || $chunk === '') {
            $meta = stream_get_meta_data($this->socket);
            if (!empty($meta['timed_out'])) {
                throw new TransportException('timed out waiting for NATS at ' . $this->hostPort());
            }
            if ($chunk === false || feof($this->socket)) {
                $this->close();
                throw new TransportException('NATS closed the connection');
            }
            return;
        }
        $this->buffer .= $chunk;
    }

    private function write(string $data): void
    {
        if ($this->socket === null) {
            throw new TransportException('not connected to NATS');
        }
        while ($data !== '') {
            $written = @fwrite($this->socket, $data);
            if ($written === false || $written === 0) {
                $this->close();
                throw new TransportException('writing to NATS at ' . $this->hostPort() . ' failed');
            }
            $data = (string) substr($data, $written);
        }
    }

    private function assertSubject(string $subject): void
    {
        if ($subject === '' || preg_match('/[\s]/', $subject) === 1) {
            throw new RejectedException('invalid NATS subject "' . $subject . '"');
        }
    }

    /** @return array<string, mixed> */
    private function decode(string $json): array
    {
        $data = json_decode($json, true);
        if (!is_array($data)) {
            throw new TransportException('malformed NATS INFO');
        }
        return $data;
    }

    /** @param array<string, mixed> $data */
    private function encode(array $data): string
    {
        return json_encode($data, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    }

    private function hostPort(): string
    {
        return $this->options->host . ':' . $this->options->port;
    }

    public static function randomToken(): string
    {
        $alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
        $token = '';
        foreach (str_split(random_bytes(22)) as $byte) {
            $token .= $alphabet[ord($byte) % 62];
        }
        return $token;
    }
}
