<?php

declare(strict_types=1);

namespace Ledger\SageSync\Model\Http;

use Ledger\SageSync\Core\Http\HttpReader;
use Ledger\SageSync\Core\Http\HttpResponse;
use Ledger\SageSync\Core\Http\HttpTransport;
use Ledger\SageSync\Core\Publish\TransportException;
use Magento\Framework\HTTP\Client\CurlFactory;

/**
 * HTTP POST and GET through Magento's own HTTP client (Magento\Framework\HTTP\Client\Curl), so
 * the HTTPS fallback, pairing and the status feed work on hosts where `allow_url_fopen` is off.
 * One client per request (no header or cookie carried over); redirects are not followed; TLS
 * peers and host names are always verified; only http and https are allowed.
 */
class MagentoHttpTransport implements HttpTransport, HttpReader
{
    public function __construct(private CurlFactory $curlFactory)
    {
    }

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
        foreach ($headers as $name => $value) {
            if (preg_match('/[\r\n]/', $name . $value) === 1) {
                throw new TransportException('invalid HTTP header ' . $name);
            }
        }
        // No "Expect: 100-continue": Magento's client reads the first status line it sees.
        $headers['Expect'] = '';
        $milliseconds = max(1, (int) round($timeout * 1000));
        $client = $this->curlFactory->create();
        $client->setHeaders($headers);
        $client->setOptions([
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_SSL_VERIFYPEER => true,
            CURLOPT_SSL_VERIFYHOST => 2,
            CURLOPT_TIMEOUT_MS => $milliseconds,
            CURLOPT_CONNECTTIMEOUT_MS => $milliseconds,
        ]);
        try {
            if ($method === 'POST') {
                $client->post($url, (string) $body);
            } else {
                $client->get($url);
            }
        } catch (\Throwable $e) {
            throw new TransportException('no HTTP answer from ' . $this->origin($url) . ': ' . $e->getMessage(), 0, $e);
        }
        $status = (int) $client->getStatus();
        if ($status < 100 || $status > 599) {
            throw new TransportException('no HTTP answer from ' . $this->origin($url) . ': status line missing');
        }
        return new HttpResponse($status, (string) $client->getBody());
    }

    private function origin(string $url): string
    {
        $parts = parse_url($url);
        $port = isset($parts['port']) ? ':' . $parts['port'] : '';
        return ($parts['scheme'] ?? '') . '://' . ($parts['host'] ?? '') . $port;
    }
}
