"""What the guard answers itself: non-gRPC requests, and calls whose deadline passes.

These run against a guard in front of a silent HTTP/2 upstream that records every request and
answers none, so "never forwarded" is checked on the upstream's side, and a forwarded call stays
pending until the guard's own deadline handling ends it.
"""

from __future__ import annotations

import json
import subprocess
import time

import grpc
import pytest

import harness
from conftest import _guard_binary as harness_binary, requires_guard
from rawh2 import H2Client, grpc_frame, grpc_headers, h2_request, http1_request

pytestmark = requires_guard

REST_PATH = "/v2/vectordb/collections/list"


def _status_line_and_body(raw: bytes) -> tuple[str, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode("latin-1"), body


def _assert_one_line_reason(body: bytes) -> None:
    text = body.decode("utf-8", "replace").strip()
    assert text, "the refusal carries no reason"
    assert "\n" not in text, f"reason is not one line: {text!r}"


def test_http1_rest_request_is_refused_and_not_forwarded(silent_stack):
    guard, upstream = silent_stack
    for request in (
        f"GET {REST_PATH} HTTP/1.1\r\nHost: {guard.address}\r\nConnection: close\r\n\r\n".encode(),
        (
            f"POST /v2/vectordb/entities/query HTTP/1.1\r\nHost: {guard.address}\r\n"
            "Authorization: Bearer root:Milvus\r\nContent-Type: application/json\r\n"
            'Content-Length: 34\r\nConnection: close\r\n\r\n{"collectionName": "x", "limit":1}'
        ).encode(),
    ):
        raw = http1_request(guard.host, guard.port, request, timeout=10)
        status_line, body = _status_line_and_body(raw)
        assert status_line.startswith("HTTP/1.1 403"), raw[:200]
        _assert_one_line_reason(body)
    # The silent upstream saw no request at all (neither the REST path nor anything else).
    assert not any(path.startswith("/v2/") for path in upstream.requests()), upstream.requests()


def test_http2_json_request_gets_415_and_is_not_forwarded(silent_stack):
    guard, upstream = silent_stack
    for path in (REST_PATH, "/milvus.proto.milvus.MilvusService/GetVersion"):
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", guard.address),
            (":path", path),
            ("content-type", "application/json"),
        ]
        response = h2_request(guard.host, guard.port, headers, b"{}", timeout=10)
        assert response.status == 415, response
    assert upstream.requests() == [], upstream.requests()


def test_grpc_timeout_expiry_gives_deadline_exceeded(silent_stack):
    guard, upstream = silent_stack
    headers = grpc_headers(guard.address, harness.GET_VERSION, [("grpc-timeout", "50m")])
    started = time.monotonic()
    # No client-side deadline here: only the guard can end this call (the upstream never answers).
    response = h2_request(guard.host, guard.port, headers, grpc_frame(b""), timeout=15)
    elapsed = time.monotonic() - started
    assert response.status == 200, response
    assert response.grpc("grpc-status") == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0]), response
    assert elapsed < 5, f"DEADLINE_EXCEEDED came after {elapsed:.1f}s for a 50 ms deadline"
    # The call was forwarded and timed out waiting for the upstream (not refused up front).
    harness.wait_until(lambda: harness.GET_VERSION in upstream.requests(), 5, "the upstream to see the call")


def test_grpcio_deadline_through_guard(silent_stack):
    guard, _ = silent_stack
    with pytest.raises(grpc.RpcError) as failure:
        harness.raw_call(guard.address, harness.GET_VERSION, b"", timeout=0.05)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert guard.server.alive()


def _guard_status(response) -> tuple[str, str]:
    assert response.status == 200, response
    return response.grpc("grpc-status"), response.grpc("grpc-message") or ""


# Codes pymilvus does not retry (MILVUS.md, "Errors clients see"): a refusal must use one of them.
NOT_RETRIED = {"3", "4", "6", "7", "8", "12", "16"}


def test_oversized_message_is_refused_before_its_body(silent_stack):
    guard, upstream = silent_stack
    method = harness.MILVUS_SERVICE + "Insert"
    # Declares a 600 MiB message (over the 512 MiB default) and sends only its first bytes.
    body = bytes([0]) + (600 * 1024 * 1024).to_bytes(4, "big") + b"\x1a\x05books"
    client = H2Client(guard.host, guard.port)
    try:
        stream_id = client.send_request(grpc_headers(client.authority, method), body, end_stream=False)
        status, message = _guard_status(client.response(stream_id, timeout=10))
    finally:
        client.close()
    assert status in NOT_RETRIED, (status, message)
    assert message.startswith("milvus-guard:"), message
    assert method not in upstream.requests()


def test_unknown_rpc_is_unimplemented_and_not_forwarded(silent_stack):
    guard, upstream = silent_stack
    for path in ("/milvus.proto.milvus.MilvusService/NoSuchRpc", "/grpc.health.v1.Health/Check"):
        response = h2_request(guard.host, guard.port, grpc_headers(guard.address, path), grpc_frame(b""), timeout=10)
        status, message = _guard_status(response)
        assert status == "12", (path, status, message)
        assert message.startswith("milvus-guard:"), message
        assert path not in upstream.requests()


def test_header_fields_http2_forbids_are_recorded_and_not_forwarded(silent_stack):
    """nghttp2 resets a request whose header name has upper-case letters (`Authorization`): the guard records the
    refusal; a value with a byte HTTP/2 forbids (NUL) is left out by nghttp2, and the guard answers
    INVALID_ARGUMENT. Neither is forwarded; before, neither was recorded nor counted."""
    guard, upstream = silent_stack
    method = harness.MILVUS_SERVICE + "DropCollection"
    upper = grpc_headers(guard.address, method, [("Authorization", "cm9vdDpNaWx2dXM=")])
    reset = h2_request(guard.host, guard.port, upper, grpc_frame(b"\x1a\x05books"), timeout=10, raw_headers=True)
    assert reset.reset_code == 1, reset  # PROTOCOL_ERROR
    nul = grpc_headers(guard.address, method, [("x-note", "a\x00b")])
    response = h2_request(guard.host, guard.port, nul, grpc_frame(b"\x1a\x05books"), timeout=10, raw_headers=True)
    status, message = _guard_status(response)
    assert status == "3", (status, message)
    assert 'header field "x-note" is not valid in HTTP/2' in message, message
    # An upper-case name in request trailers: reset by nghttp2, recorded all the same.
    client = H2Client(guard.host, guard.port, raw_headers=True)
    try:
        stream = client.send_request(grpc_headers(guard.address, method), grpc_frame(b"\x1a\x05books"), end_stream=False)
        client.conn.send_headers(stream, [("X-Trailer", "1")], end_stream=True)
        client.flush()
        assert client.response(stream, timeout=10).reset_code == 1
    finally:
        client.close()
    assert method not in upstream.requests()

    def refusals() -> list[dict]:
        listed = subprocess.run([harness_binary(), "audit", "--rpc", "DropCollection", "--format", "json"],
                                cwd=guard.server.work_dir, capture_output=True, text=True, timeout=60)
        return [json.loads(line) for line in listed.stdout.splitlines()]
    harness.wait_until(lambda: len(refusals()) >= 3, 10, "the three refusals in the audit store")
    assert sorted(e["status"] for e in refusals()) == [3, 13, 13]
    by_status = {e["status"]: e for e in refusals()}
    assert by_status[13]["message"].startswith("HTTP/2: request reset (PROTOCOL_ERROR)"), by_status[13]
    assert by_status[3]["decision"] == "failed"


def test_second_message_on_a_unary_call_is_refused(silent_stack):
    guard, upstream = silent_stack
    method = harness.MILVUS_SERVICE + "DropCollection"
    body = grpc_frame(b"\x1a\x05books") + grpc_frame(b"\x1a\x06movies")
    response = h2_request(guard.host, guard.port, grpc_headers(guard.address, method), body, timeout=10)
    status, message = _guard_status(response)
    assert status == "3", (status, message)
    assert message.startswith("milvus-guard:"), message
    assert method not in upstream.requests()
