<?php

declare(strict_types=1);

/*
 * The module's side of the pairing end-to-end test, without Magento: the same Core classes the
 * module runs (Pairing, PairingClient, EventRecorder, SnapshotSerializer, EnvelopeFactory, Relay,
 * NatsPublisher), the test fixtures for realistic documents, and a JSON file in place of
 * core_config_data and the outbox table. Driven by the Rust end-to-end test; every command prints
 * one JSON object on stdout.
 *
 *   start            --state FILE --gateway URL          → {"pairing_id","code","expires_at"}
 *   complete         --state FILE [--wait SECONDS]       → {"state":"paired"|"pending"|"failed", …}
 *   publish          --state FILE --invoices N [--nats-url URL]
 *                                                        → {"published","failed","event_ids","errors"}
 *   republish        --state FILE [--nats-url URL]       → same shape, same event ids again
 *   publish-foreign  --state FILE --merchant OTHER [--nats-url URL] → {"published":0|1,"error"}
 *   status           --state FILE [--merchant OTHER]     → {"http_status","changes",…}
 *   disconnect       --state FILE                        → {"revoked":true|false,…}
 *
 * Exit status 0 whenever the JSON describes the outcome (refusals included); 1 when start got no
 * code, or on bad arguments or an unexpected error ({"error": …}).
 */

use Ledger\SageSync\Core\Clock;
use Ledger\SageSync\Core\Event\EventType;
use Ledger\SageSync\Core\Http\StreamHttpTransport;
use Ledger\SageSync\Core\Nats\NatsOptions;
use Ledger\SageSync\Core\Nats\NatsPublisher;
use Ledger\SageSync\Core\Outbox\EnvelopeFactory;
use Ledger\SageSync\Core\Outbox\EventRecorder;
use Ledger\SageSync\Core\Outbox\InMemoryOutboxStore;
use Ledger\SageSync\Core\Outbox\OutboxRecord;
use Ledger\SageSync\Core\Outbox\OutboxStatus;
use Ledger\SageSync\Core\Outbox\Relay;
use Ledger\SageSync\Core\Outbox\RetryPolicy;
use Ledger\SageSync\Core\Pairing\Credentials;
use Ledger\SageSync\Core\Pairing\Pairing;
use Ledger\SageSync\Core\Pairing\PairingClient;
use Ledger\SageSync\Core\Pairing\PairingState;
use Ledger\SageSync\Core\Pairing\PairingStore;
use Ledger\SageSync\Core\Pairing\PendingPairing;
use Ledger\SageSync\Core\Snapshot\SnapshotSerializer;
use Ledger\SageSync\Core\SystemClock;
use Ledger\SageSync\Test\Fixture\Documents;
use Ledger\SageSync\Test\Support\FixedSource;

ini_set('display_errors', 'stderr');
require dirname(__DIR__) . '/Test/bootstrap.php';

/** The state file: the pairing (as the module keeps it in core_config_data) plus the outbox rows. */
final class StateFile implements PairingStore
{
    /** @var array<string, mixed> */
    public array $data;

    public function __construct(private string $path)
    {
        $text = is_file($path) ? (string) file_get_contents($path) : '';
        $data = $text === '' ? [] : json_decode($text, true);
        if (!is_array($data)) {
            throw new RuntimeException('the state file ' . $path . ' is not JSON');
        }
        $this->data = $data;
    }

    /** Writes atomically, so an interrupted command never leaves half a file. */
    public function save(): void
    {
        $temp = $this->path . '.tmp' . getmypid();
        $json = json_encode($this->data, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        file_put_contents($temp, $json . "\n");
        rename($temp, $this->path);
    }

    public function pending(): ?PendingPairing
    {
        $data = $this->data['pending'] ?? null;
        return is_array($data) ? PendingPairing::fromArray($data, (string) ($data['poll_secret'] ?? '')) : null;
    }

    public function savePending(?PendingPairing $pending): void
    {
        $this->data['pending'] = $pending === null ? null : $pending->toArray() + ['poll_secret' => $pending->pollSecret];
        $this->save();
    }

    public function credentials(): ?Credentials
    {
        return self::credentialsFrom($this->data['credentials'] ?? null);
    }

    /** The credentials revoked by `disconnect`, kept so a test can show they no longer work. */
    public function revokedCredentials(): ?Credentials
    {
        return self::credentialsFrom($this->data['revoked_credentials'] ?? null);
    }

    public function saveCredentials(?Credentials $credentials): void
    {
        $this->data['credentials'] = $credentials === null
            ? null
            : $credentials->toArray() + ['secret' => $credentials->secret];
        $this->save();
    }

    public function message(): ?string
    {
        return is_string($this->data['message'] ?? null) ? $this->data['message'] : null;
    }

    public function saveMessage(?string $message): void
    {
        $this->data['message'] = $message;
        $this->save();
    }

    private static function credentialsFrom(mixed $data): ?Credentials
    {
        return is_array($data) ? Credentials::fromArray($data, (string) ($data['secret'] ?? '')) : null;
    }
}

/** @return array<string, string> --name value pairs */
function options(array $argv): array
{
    $options = [];
    for ($i = 0; $i < count($argv); $i++) {
        if (!str_starts_with($argv[$i], '--')) {
            throw new InvalidArgumentException('unexpected argument "' . $argv[$i] . '"');
        }
        $name = substr($argv[$i], 2);
        if (str_contains($name, '=')) {
            [$name, $value] = explode('=', $name, 2);
        } else {
            $value = $argv[++$i] ?? throw new InvalidArgumentException('--' . $name . ' needs a value');
        }
        $options[$name] = $value;
    }
    return $options;
}

function required(array $options, string $name): string
{
    $value = $options[$name] ?? '';
    if ($value === '') {
        throw new InvalidArgumentException('--' . $name . ' is required');
    }
    return $value;
}

function client(): PairingClient
{
    $http = new StreamHttpTransport();
    return new PairingClient($http, $http, 10.0);
}

/** The key publishing uses: the paired one, else the revoked one (to prove it stopped working). */
function publishingCredentials(StateFile $state): Credentials
{
    return $state->credentials() ?? $state->revokedCredentials()
        ?? throw new RuntimeException('not paired: run start and complete first');
}

function publisher(Credentials $credentials, ?string $natsUrl): NatsPublisher
{
    $url = $natsUrl ?? $credentials->natsUrl();
    if ($url === '') {
        throw new RuntimeException('the pairing gave no NATS URL; pass --nats-url');
    }
    return NatsPublisher::withOptions(
        NatsOptions::fromUrl($url, $credentials->keyId, $credentials->secret, null, 5.0, $credentials->inboxPrefix)
    );
}

/** @return array<string, mixed> */
function rowToArray(OutboxRecord $record): array
{
    return [
        'event_id' => $record->eventId,
        'event_type' => $record->eventType->value,
        'dedupe_key' => $record->dedupeKey,
        'entity_type' => $record->entityType,
        'entity_id' => $record->entityId,
        'website_id' => $record->websiteId,
        'store_id' => $record->storeId,
        'occurred_at' => $record->occurredAt->format('Y-m-d\TH:i:s.uP'),
        'source' => $record->source,
        'payload' => $record->payload,
        'status' => $record->status->value,
        'attempts' => $record->attempts,
        'last_error' => $record->lastError,
    ];
}

/** A row as stored, put back to pending so it is sent again with its own event id. */
function rowFromArray(array $row, Clock $clock): OutboxRecord
{
    return new OutboxRecord(
        eventId: (string) $row['event_id'],
        eventType: EventType::from((string) $row['event_type']),
        dedupeKey: (string) $row['dedupe_key'],
        entityType: (string) $row['entity_type'],
        entityId: (int) $row['entity_id'],
        websiteId: (int) $row['website_id'],
        storeId: (int) $row['store_id'],
        occurredAt: new DateTimeImmutable((string) $row['occurred_at']),
        source: (array) $row['source'],
        payload: is_array($row['payload']) ? $row['payload'] : null,
        nextAttemptAt: $clock->now(),
    );
}

/**
 * Publishes every open row of the outboxes, in order, as the module's relay does, and reports.
 *
 * @param list<InMemoryOutboxStore> $outboxes
 * @return array{published: int, failed: int, event_ids: list<string>, errors: list<string>}
 */
function relay(array $outboxes, Credentials $credentials, ?string $natsUrl, Clock $clock): array
{
    $errors = [];
    $publisher = null;
    try {
        $publisher = publisher($credentials, $natsUrl);
        foreach ($outboxes as $outbox) {
            $relay = new Relay($outbox, $publisher, new EnvelopeFactory(), new RetryPolicy(12), $clock);
            $result = $relay->run($credentials->merchantId, 10000);
            if ($result->stoppedBy !== null) {
                $errors[] = $result->stoppedBy;
                break;
            }
        }
    } catch (Throwable $e) {
        $errors[] = $e->getMessage();
    } finally {
        $publisher?->close();
    }
    $published = 0;
    $ids = [];
    foreach ($outboxes as $outbox) {
        foreach ($outbox->all() as $row) {
            $ids[] = $row->eventId;
            if ($row->status === OutboxStatus::Published) {
                $published++;
            } elseif ($row->lastError !== null) {
                $errors[] = $row->lastError;
            }
        }
    }
    return [
        'published' => $published,
        'failed' => count($ids) - $published,
        'event_ids' => $ids,
        'errors' => array_values(array_unique($errors)),
    ];
}

/** @return array<string, mixed> */
function start(StateFile $state, array $options, Clock $clock): array
{
    $pairing = new Pairing(client(), $state, $clock);
    $result = $pairing->start(required($options, 'gateway'), [
        'store_url' => 'https://e2e-store.example/',
        'store_name' => 'Ledger pairing e2e store',
        'module_version' => Ledger\SageSync\Model\ModuleSource::MODULE_VERSION,
    ]);
    $state->data['gateway'] = PairingClient::baseUrl(required($options, 'gateway'));
    $state->save();
    return [
        'pairing_id' => $result->pending?->pairingId,
        'code' => $result->pending?->code,
        'expires_at' => $result->pending?->expiresAt->format('Y-m-d\TH:i:s\Z'),
    ];
}

/** @return array<string, mixed> */
function complete(StateFile $state, array $options, Clock $clock): array
{
    $pairing = new Pairing(client(), $state, $clock);
    $until = microtime(true) + max(0.0, (float) ($options['wait'] ?? 10));
    $result = $pairing->check();
    while ($result->state === PairingState::PENDING && microtime(true) < $until) {
        // Faster than the gateway's suggested interval on purpose: a test should not idle.
        usleep((int) (1000000 * min(1.0, max(0.0, $until - microtime(true)))));
        $result = $pairing->check();
    }
    if ($result->credentials !== null) {
        return [
            'state' => 'paired',
            'merchant_id' => $result->credentials->merchantId,
            'key_id' => $result->credentials->keyId,
            'nats_urls' => $result->credentials->natsUrls,
            'inbox_prefix' => $result->credentials->inboxPrefix,
            'gateway_url' => $result->credentials->gatewayUrl,
        ];
    }
    if ($result->state === PairingState::PENDING) {
        return ['state' => 'pending'] + ($result->warning !== null ? ['warning' => $result->warning] : []);
    }
    return ['state' => 'failed', 'error' => $result->message ?? 'no pairing code waiting (run start)'];
}

/** Invoice number $n: distinct entity and increment ids, same order and customer. */
function invoiceDocument(int $n): array
{
    $invoice = Documents::ukCardInvoice();
    $invoice['entity_id'] = (string) $n;
    $invoice['increment_id'] = sprintf('E2E%06d', $n);
    foreach ($invoice['items'] as $i => $item) {
        $invoice['items'][$i]['parent_id'] = (string) $n;
        $invoice['items'][$i]['entity_id'] = (string) ($n * 10 + $i);
    }
    return $invoice;
}

/** @return array<string, mixed> */
function publish(StateFile $state, array $options, Clock $clock): array
{
    $credentials = publishingCredentials($state);
    $count = (int) required($options, 'invoices');
    if ($count < 0 || $count > 10000) {
        throw new InvalidArgumentException('--invoices must be between 0 and 10000');
    }
    $outbox = new InMemoryOutboxStore();
    $recorder = new EventRecorder($outbox, new SnapshotSerializer(), $clock, new FixedSource());
    $next = (int) ($state->data['next_invoice'] ?? 700001);
    for ($i = 0; $i < $count; $i++) {
        $recorder->invoice(EventType::InvoiceCreated, invoiceDocument($next++), Documents::ukCardOrder(), 1);
    }
    $recorder->customer(Documents::b2bCustomer(), 1, 1);
    $state->data['next_invoice'] = $next;
    // Kept before sending, so a crash mid-way still lets republish send the same event ids.
    $state->data['outbox'] = array_merge(
        (array) ($state->data['outbox'] ?? []),
        array_map('rowToArray', $outbox->all())
    );
    $state->save();
    $report = relay([$outbox], $credentials, $options['nats-url'] ?? null, $clock);
    saveOutcome($state, [$outbox]);
    return $report;
}

/**
 * Copies the relay's outcome of each row back into the state file.
 *
 * @param list<InMemoryOutboxStore> $outboxes
 */
function saveOutcome(StateFile $state, array $outboxes): void
{
    $byId = [];
    foreach ($outboxes as $outbox) {
        foreach ($outbox->all() as $row) {
            $byId[$row->eventId] = rowToArray($row);
        }
    }
    foreach ((array) ($state->data['outbox'] ?? []) as $i => $row) {
        if (isset($byId[$row['event_id']])) {
            $state->data['outbox'][$i] = $byId[$row['event_id']];
        }
    }
    $state->save();
}

/** @return array<string, mixed> */
function republish(StateFile $state, array $options, Clock $clock): array
{
    $credentials = publishingCredentials($state);
    // Two open rows with one dedupe key (the customer, saved by each publish) would coalesce into
    // one event id in a single outbox; separate rounds keep every stored event id.
    $rounds = [];
    foreach ((array) ($state->data['outbox'] ?? []) as $row) {
        $record = rowFromArray($row, $clock);
        $round = 0;
        while (isset($rounds[$round]['keys'][$record->dedupeKey])) {
            $round++;
        }
        $rounds[$round] ??= ['keys' => [], 'outbox' => new InMemoryOutboxStore()];
        $rounds[$round]['keys'][$record->dedupeKey] = true;
        $rounds[$round]['outbox']->append($record);
    }
    $outboxes = array_column($rounds, 'outbox');
    $report = relay($outboxes, $credentials, $options['nats-url'] ?? null, $clock);
    saveOutcome($state, $outboxes);
    $report['event_ids'] = array_column((array) ($state->data['outbox'] ?? []), 'event_id');
    return $report;
}

/** @return array<string, mixed> */
function publishForeign(StateFile $state, array $options, Clock $clock): array
{
    $credentials = publishingCredentials($state);
    $other = required($options, 'merchant');
    $outbox = new InMemoryOutboxStore();
    $recorder = new EventRecorder($outbox, new SnapshotSerializer(), $clock, new FixedSource());
    $record = $recorder->invoice(EventType::InvoiceCreated, invoiceDocument(690001), Documents::ukCardOrder(), 1);
    $message = (new EnvelopeFactory())->message($record, $other);
    $publisher = publisher($credentials, $options['nats-url'] ?? null);
    try {
        $ack = $publisher->publish($message);
        return ['published' => 1, 'error' => null, 'subject' => $message->subject, 'sequence' => $ack->sequence];
    } catch (Throwable $e) {
        return ['published' => 0, 'error' => $e->getMessage(), 'subject' => $message->subject];
    } finally {
        $publisher->close();
    }
}

/** @return array<string, mixed> */
function status(StateFile $state, array $options): array
{
    $credentials = publishingCredentials($state);
    $query = ['cursor' => '0'];
    if (($options['merchant'] ?? '') !== '') {
        $query['merchant'] = $options['merchant'];
    }
    $base = PairingClient::baseUrl($credentials->gatewayUrl ?: (string) ($state->data['gateway'] ?? ''));
    $response = (new StreamHttpTransport())->get(
        $base . '/v1/status?' . http_build_query($query),
        ['Authorization' => 'Bearer ' . $credentials->secret, 'Accept' => 'application/json'],
        10.0
    );
    $body = json_decode($response->body, true);
    if ($response->status === 200 && is_array($body)) {
        return [
            'http_status' => 200,
            'changes' => $body['items'] ?? $body['changes'] ?? [],
            'next_cursor' => $body['next_cursor'] ?? null,
        ];
    }
    return ['http_status' => $response->status, 'changes' => [], 'error' => $body ?? $response->body];
}

/** @return array<string, mixed> */
function disconnect(StateFile $state, Clock $clock): array
{
    $credentials = $state->credentials();
    if ($credentials === null) {
        return ['revoked' => false, 'error' => 'not paired'];
    }
    $state->data['revoked_credentials'] = $credentials->toArray() + ['secret' => $credentials->secret];
    $state->save();
    try {
        (new Pairing(client(), $state, $clock))->disconnect();
    } catch (Throwable $e) {
        return ['revoked' => false, 'error' => $e->getMessage()];
    }
    return ['revoked' => true, 'key_id' => $credentials->keyId];
}

$command = $argv[1] ?? '';
$exit = 0;
try {
    $options = options(array_slice($argv, 2));
    $state = new StateFile(required($options, 'state'));
    $clock = new SystemClock();
    if ($command === 'start') {
        try {
            $out = start($state, $options, $clock);
        } catch (Throwable $e) {
            $out = ['error' => $e->getMessage()];
            $exit = 1;
        }
    } else {
        $out = match ($command) {
            'complete' => complete($state, $options, $clock),
            'publish' => publish($state, $options, $clock),
            'republish' => republish($state, $options, $clock),
            'publish-foreign' => publishForeign($state, $options, $clock),
            'status' => status($state, $options),
            'disconnect' => disconnect($state, $clock),
            default => throw new InvalidArgumentException(
                'usage: pairing-e2e.php start|complete|publish|republish|publish-foreign|status|disconnect --state FILE …'
            ),
        };
    }
} catch (Throwable $e) {
    $out = ['error' => $e->getMessage()];
    $exit = 1;
}
fwrite(STDOUT, json_encode($out, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE) . "\n");
exit($exit);
