<?php

// A stand-in for Ledger's gateway ingest endpoint (services/gateway/src/ingest.rs) for
// `php -S`: Bearer key check, 202 accepted/duplicate by event_id, 422 when event_id is missing.
declare(strict_types=1);

header('Content-Type: application/json');
$seenFile = sys_get_temp_dir() . '/ledger-fake-gateway-' . getenv('LEDGER_FAKE_GATEWAY_ID') . '.json';
if ($_SERVER['REQUEST_METHOD'] !== 'POST' || $_SERVER['REQUEST_URI'] !== '/v1/events') {
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
