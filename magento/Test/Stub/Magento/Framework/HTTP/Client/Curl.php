<?php

declare(strict_types=1);

namespace Magento\Framework\HTTP\Client;

/**
 * Stand-in for Magento's HTTP client: records what the module sets and sends, answers with the
 * status and body (or throws the exception) the test scripted, as the real client does after a
 * curl error.
 */
class Curl
{
    /** @var list<self> every client created, in order */
    public static array $created = [];

    /** @var array{int, string}|\Exception what the next request returns */
    public static array|\Exception $next = [200, ''];

    /** @var array<string, string> */
    public array $headers = [];

    /** @var array<int, mixed> */
    public array $options = [];

    /** @var list<array{string, string, ?string}> method, URI and body of each request */
    public array $requests = [];

    private int $status = 0;
    private string $body = '';

    public function __construct()
    {
        self::$created[] = $this;
    }

    /** @param array<string, string> $headers */
    public function setHeaders($headers)
    {
        $this->headers = $headers;
    }

    /** @param array<int, mixed> $arr */
    public function setOptions($arr)
    {
        $this->options = $arr;
    }

    public function setOption($name, $value)
    {
        $this->options[$name] = $value;
    }

    public function setTimeout($value)
    {
        $this->options[CURLOPT_TIMEOUT] = (int) $value;
    }

    public function get($uri)
    {
        $this->send('GET', $uri, null);
    }

    public function post($uri, $params)
    {
        $this->send('POST', $uri, is_array($params) ? http_build_query($params) : $params);
    }

    public function getStatus()
    {
        return $this->status;
    }

    public function getBody()
    {
        return $this->body;
    }

    private function send(string $method, string $uri, ?string $body): void
    {
        $this->requests[] = [$method, $uri, $body];
        if (self::$next instanceof \Exception) {
            throw self::$next;
        }
        [$this->status, $this->body] = self::$next;
    }
}
