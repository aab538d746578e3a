<?php

declare(strict_types=1);

namespace Ledger\SageSync\Test\Support;

use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Core\Http\HttpResponse;
use Ledger\SageSync\Core\Publish\TransportException;
use RuntimeException;
use Throwable;

/** A gateway stand-in for GET requests: answers (or failures) in the order scripted. */
final class ScriptedHttp implements HttpReader
{
    /** @var list<array{string, array<string, string>, float}> url, headers, timeout of each request */
    public array $requests = [];

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
        $this->requests[] = [$url, $headers, $timeout];
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
