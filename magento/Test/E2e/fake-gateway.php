<?php

// A stand-in for Ledger's gateway ingest endpoint (services/gateway/src/ingest.rs) for
// `php -S`: Bearer key check, 202 accepted/duplicate by event_id, 422 when event_id is missing;
// and its status feed (services/gateway/src/status.rs): GET /v1/status?cursor=N&limit=M over a
// fixed list of changes at stream sequences 2, 5 and 9.
declare(strict_types=1);

header('Content-Type: application/json');
$seenFile = sys_get_temp_dir() . '/ledger-fake-gateway-' . getenv('LEDGER_FAKE_GATEWAY_ID') . '.json';
$path = (string) parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($_SERVER['REQUEST_METHOD'] === 'GET' && $path === '/v1/status') {
    if (($_SERVER['HTTP_AUTHORIZATION'] ?? '') !== 'Bearer ik_test_key') {
        http_response_code(401);
        echo '{"error":"unauthorized","message":"the merchant\'s ingest key is required"}';
        return;
    }
    $changes = [
        2 => ['entity' => 'invoice', 'document_key' => 'invoice:1:000000123', 'state' => 'pending',
            'error_code' => 'sage_throttled'],
        5 => ['entity' => 'customer', 'document_key' => 'customer:42', 'state' => 'synced',
            'sage_reference' => 'HARTLEY'],
        9 => ['entity' => 'invoice', 'document_key' => 'invoice:1:000000123', 'state' => 'synced',
            'sage_reference' => 'SI-1045', 'sage_id' => '5f1c'],
    ];
    $cursor = (int) ($_GET['cursor'] ?? 0);
    $limit = max(1, min(1000, (int) ($_GET['limit'] ?? 100)));
    $after = array_filter($changes, static fn (int $seq): bool => $seq > $cursor, ARRAY_FILTER_USE_KEY);
    $items = [];
    foreach (array_slice($after, 0, $limit, true) as $seq => $change) {
        $items[] = ['cursor' => $seq] + $change + ['service' => 'stand-in', 'at' => '2026-11-27T08:00:0' . $seq . 'Z'];
    }
    echo json_encode([
        'items' => $items,
        'next_cursor' => $items === [] ? $cursor : end($items)['cursor'],
        'more' => count($after) > $limit,
    ]);
    return;
}
if ($_SERVER['REQUEST_METHOD'] !== 'POST' || $path !== '/v1/events') {
    http_response_code(404);
    echo '{"error":"not_found"}';
    return;
}
if (($_SERVER['HTTP_AUTHORIZATION'] ?? '') !== 'Bearer ik_test_key') {
    http_response_code(401);
    echo '{"error":"unauthorized","message":"missing or unknown ingest key"}';
    return;
}
$event = json_decode((string) file_get_contents('php://input'), true);
if (!is_array($event) || !isset($event['event_id'])) {
    http_response_code(422);
    echo '{"error":"invalid_event","message":"quarantined","issues":[{"field":"/event_id","reason":"missing"}]}';
    return;
}
$seen = is_file($seenFile) ? json_decode((string) file_get_contents($seenFile), true) : [];
$duplicate = isset($seen[$event['event_id']]);
if (!$duplicate) {
    $seen[$event['event_id']] = count($seen) + 1;
    file_put_contents($seenFile, json_encode($seen));
}
http_response_code(202);
echo json_encode([
    'status' => $duplicate ? 'duplicate' : 'accepted',
    'event_id' => $event['event_id'],
    'stream_sequence' => $seen[$event['event_id']],
    'traceparent' => $_SERVER['HTTP_TRACEPARENT'] ?? null,
]);
