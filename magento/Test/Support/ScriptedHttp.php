<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Core\Http\HttpResponse;
use Ledger\SageSync\Core\Http\HttpTransport;
use Ledger\SageSync\Core\Publish\TransportException;
use RuntimeException;
use Throwable;

/** A gateway stand-in for GET and POST requests: answers (or failures) in the order scripted. */
final class ScriptedHttp implements HttpReader, HttpTransport
{
    /** @var list<array{string, array<string, string>, float}> url, headers, timeout of each request */
    public array $requests = [];

    /** @var list<array{string, ?string}> method and body of each request, as in $requests */
    public array $sent = [];

    /** @var list<HttpResponse|Throwable> */
    private array $script = [];

    public function answer(int $status, string|array $body): self
    {
        $this->script[] = new HttpResponse($status, is_array($body) ? (string) json_encode($body) : $body);
        return $this;
    }

    public function timeout(): self
    {
        $this->script[] = new TransportException('no HTTP answer from https://ingest.ledger.example: timed out');
        return $this;
    }

    public function get(string $url, array $headers, float $timeout): HttpResponse
    {
        return $this->next('GET', $url, $headers, null, $timeout);
    }

    public function post(string $url, array $headers, string $body, float $timeout): HttpResponse
    {
        return $this->next('POST', $url, $headers, $body, $timeout);
    }

    private function next(string $method, string $url, array $headers, ?string $body, float $timeout): HttpResponse
    {
        $this->requests[] = [$url, $headers, $timeout];
        $this->sent[] = [$method, $body];
        $next = array_shift($this->script) ?? throw new RuntimeException('unscripted request ' . $url);
        if ($next instanceof Throwable) {
            throw $next;
        }
        return $next;
    }

    /** @return list<string> the cursor of each request */
    public function cursors(): array
    {
        return array_map(static function (array $request): string {
            parse_str((string) parse_url($request[0], PHP_URL_QUERY), $query);
            return (string) ($query['cursor'] ?? '');
        }, $this->requests);
    }
}
