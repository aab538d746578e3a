<?php

declare(strict_types=1);

namespace Ledger\SageSync\Core\Http;

use Ledger\SageSync\Core\Publish\TransportException;

/** HTTP POST and GET with PHP's own stream wrapper (no curl needed); TLS peers are always verified. */
final class StreamHttpTransport implements HttpTransport, HttpReader
{
    public function post(string $url, array $headers, string $body, float $timeout): HttpResponse
    {
        return $this->request('POST', $url, $headers, $body, $timeout);
    }

    public function get(string $url, array $headers, float $timeout): HttpResponse
    {
        return $this->request('GET', $url, $headers, null, $timeout);
    }

    /** @param array<string, string> $headers */
    private function request(string $method, string $url, array $headers, ?string $body, float $timeout): HttpResponse
    {
        $lines = [];
        foreach ($headers as $name => $value) {
            if (preg_match('/[\r\n]/', $name . $value) === 1) {
                throw new TransportException('invalid HTTP header ' . $name);
            }
            $lines[] = $name . ': ' . $value;
        }
        if ($body !== null) {
            $lines[] = 'Content-Length: ' . strlen($body);
        }
        $lines[] = 'Connection: close';
        $http = [
            'method' => $method,
            'header' => implode("\r\n", $lines),
            'timeout' => $timeout,
            'ignore_errors' => true,
            'follow_location' => 0,
            'protocol_version' => 1.1,
        ];
        if ($body !== null) {
            $http['content'] = $body;
        }
        $context = stream_context_create([
            'http' => $http,
            'ssl' => ['verify_peer' => true, 'verify_peer_name' => true],
        ]);
        $http_response_header = [];
        $answer = @file_get_contents($url, false, $context);
        $statusLine = $http_response_header[0] ?? '';
        if ($answer === false || preg_match('#^HTTP/\S+\s+(\d{3})#', $statusLine, $match) !== 1) {
            $error = error_get_last();
            throw new TransportException('no HTTP answer from ' . $this->origin($url)
                . ($error !== null ? ': ' . $error['message'] : ''));
        }
        return new HttpResponse((int) $match[1], $answer);
    }

    private function origin(string $url): string
    {
        $parts = parse_url($url);
        $port = isset($parts['port']) ? ':' . $parts['port'] : '';
        return ($parts['scheme'] ?? '') . '://' . ($parts['host'] ?? '') . $port;
    }
}
