"""Clients that vanish mid-call, and an upstream that goes away and comes back."""

from __future__ import annotations

import os
import signal
import socket
import time

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

import harness
from conftest import DIRECT, _guard_binary, _milvus_lite, requires_guard
from rawh2 import H2Client, grpc_frame, grpc_headers


def _healthy(guard) -> None:
    """The guard still answers: a raw call and a pymilvus client both work."""
    if guard.server is not None:
        assert guard.server.alive(), f"milvus-guard exited:\n{guard.server.log_tail()}"
    harness.raw_call(guard.address, harness.GET_VERSION, b"", timeout=10)
    client = MilvusClient(uri=guard.uri, timeout=30)
    try:
        assert client.get_server_version(timeout=10).startswith("milvus_lite")
        client.list_collections(timeout=10)
    finally:
        client.close()


def _big_insert_request(megabytes: int) -> bytes:
    floats = megabytes * 1024 * 1024 // 4
    dim = 256
    rows = floats // dim
    request = milvus_pb2.InsertRequest(collection_name="no_such_collection_e2e", num_rows=rows)
    field = request.fields_data.add()
    field.type = schema_pb2.DataType.FloatVector
    field.field_name = "vec"
    field.vectors.dim = dim
    field.vectors.float_vector.data.extend([0.5] * (rows * dim))
    return request.SerializeToString()


def test_half_sent_requests_then_close(guard):
    host, port = guard.host, guard.port
    insert = _big_insert_request(4)
    for i in range(10):
        client = H2Client(host, port)
        stream_id = client.conn.get_next_available_stream_id()
        client.conn.send_headers(stream_id, grpc_headers(client.authority, harness.MILVUS_SERVICE + "Insert"))
        frame = grpc_frame(insert)
        # Declares the whole message, sends a slice of it (within the initial window), then vanishes.
        sent, limit = 0, 16_000 + i * 4_000  # under the 65,535-byte initial window
        while sent < limit:
            chunk = frame[sent : min(limit, sent + 16_384)]
            client.conn.send_data(stream_id, chunk)
            sent += len(chunk)
        client.flush()
        client.close()
    _healthy(guard)


def test_requests_reset_mid_body(guard):
    client = H2Client(guard.host, guard.port)
    try:
        for _ in range(20):
            stream_id = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream_id, grpc_headers(client.authority, harness.MILVUS_SERVICE + "Insert"))
            client.conn.send_data(stream_id, grpc_frame(b"\x00" * 100_000)[:2_000])
            client.conn.reset_stream(stream_id, error_code=8)  # CANCEL
            client.flush()
        # The same connection still serves a whole call.
        stream_id = client.send_request(
            grpc_headers(client.authority, harness.GET_VERSION), grpc_frame(b"")
        )
        response = client.response(stream_id, timeout=10)
        assert response.status == 200 and response.grpc("grpc-status") == "0", response
    finally:
        client.close()
    _healthy(guard)


def test_broken_connections(guard):
    host, port = guard.host, guard.port
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    for payload in (b"", preface[:10], preface, preface + b"\x00\x00\x12\x04", b"\xff" * 64):
        with socket.create_connection((host, port), timeout=5) as sock:
            if payload:
                sock.sendall(payload)
    _healthy(guard)


def test_grpcio_call_cancelled_mid_upload(guard):
    payload = _big_insert_request(32)
    with grpc.insecure_channel(guard.address, options=[("grpc.max_send_message_length", -1)]) as channel:
        insert = channel.unary_unary(
            harness.MILVUS_SERVICE + "Insert", request_serializer=None, response_deserializer=None
        )
        for delay in (0.0, 0.02, 0.1):
            future = insert.future(payload, timeout=60)
            time.sleep(delay)  # lets part of the 32 MiB body go out before the cancel
            future.cancel()
            try:
                future.result(timeout=60)
            except grpc.FutureCancelledError:
                pass
            except grpc.RpcError:
                pass  # finished before the cancel: milvus-lite refused the unknown collection
    _healthy(guard)


def test_upstream_down_gives_unavailable_then_recovers(stack):
    guard = stack.guard
    client = MilvusClient(uri=guard.uri, timeout=30)
    client.create_collection("survivor", dimension=4, timeout=30)
    client.insert("survivor", [{"id": i, "vector": [float(i)] * 4} for i in range(10)], timeout=30)
    client.flush("survivor", timeout=30)
    client.close()

    stack.stop_milvus()
    with pytest.raises(grpc.RpcError) as failure:
        harness.raw_call(guard.address, harness.GET_VERSION, b"", timeout=20)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value
    if not DIRECT:
        assert (failure.value.details() or "").startswith("milvus-guard:"), failure.value.details()
        assert guard.server.alive()

    stack.start_milvus()  # same port, same data directory
    harness.wait_until(lambda: harness.get_version_ok(guard.address), 60, "the guard to reach milvus-lite again")
    client = MilvusClient(uri=guard.uri, timeout=30)
    try:
        assert client.has_collection("survivor", timeout=30)
        client.load_collection("survivor", timeout=30)
        assert client.query("survivor", filter="", output_fields=["count(*)"], timeout=30)[0]["count(*)"] == 10
    finally:
        client.close()


@requires_guard
def test_unavailable_status_for_pymilvus_calls_in_flight(stack):
    """A Milvus call (not just GetVersion) also gets the guard's UNAVAILABLE when upstream is gone."""
    stack.stop_milvus()
    request = milvus_pb2.HasCollectionRequest(collection_name="anything").SerializeToString()
    with pytest.raises(grpc.RpcError) as failure:
        harness.raw_call(stack.guard.address, "HasCollection", request, timeout=20)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (failure.value.details() or "").startswith("milvus-guard:"), failure.value.details()


@requires_guard
def test_frozen_milvus_fails_the_call_in_flight_after_an_unanswered_keepalive(tmp_path, log_dir):
    """milvus-lite stopped with SIGSTOP keeps its connections open but answers nothing, as a host that died or a
    firewall that dropped the flow: a call in flight gets the guard's UNAVAILABLE once a keepalive PING goes
    unanswered (upstream.keepalive 1s, keepalive_timeout 1s), instead of hanging; after SIGCONT calls work again."""
    milvus_port = harness.free_port()
    milvus = harness.start_milvus_lite(_milvus_lite(), tmp_path / "data", milvus_port, log_dir, "milvus-lite-frozen")
    port = harness.free_port()
    config = 'upstream:\n  address: "127.0.0.1:1"\n  keepalive: 1s\n  keepalive_timeout: 1s\n'
    # One event loop: each loop has its own Milvus connections, and with two the call below could land on the loop
    # that has none yet, whose connect to the frozen Milvus then times out instead (seen on a busy machine).
    guard = harness.start_guard(
        _guard_binary(), port, f"127.0.0.1:{milvus_port}", log_dir, name="milvus-guard-keepalive", config=config,
        extra=["--threads", "1"],
    )
    address = f"127.0.0.1:{port}"
    group = milvus.proc.pid  # its own session and process group: the wrapper and the server it starts
    try:
        harness.raw_call(address, harness.GET_VERSION, b"", timeout=10)  # the guard's connection to milvus-lite
        os.killpg(group, signal.SIGSTOP)
        request = milvus_pb2.HasCollectionRequest(collection_name="anything").SerializeToString()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failure:
            harness.raw_call(address, "HasCollection", request, timeout=30)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value
        assert "no answer to a keepalive PING within 1 s" in (failure.value.details() or ""), failure.value.details()
        assert time.monotonic() - started < 25, "failed by the client's deadline, not by the keepalive"
        assert guard.alive()
        os.killpg(group, signal.SIGCONT)
        harness.wait_until(lambda: harness.get_version_ok(address), 30, "the guard to reach milvus-lite again")
    finally:
        try:
            os.killpg(group, signal.SIGCONT)
        except ProcessLookupError:
            pass
        guard.stop()
        milvus.stop()


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@requires_guard
def test_connection_flood_is_capped(milvus, log_dir):
    """300 idle connections against a guard allowed 160 descriptors: it lowers limits.client_connections to
    what fits (160 - 64 - 1 x (8 + 8) = 80), closes the connections beyond it, does not spin, and serves again
    once the flood is gone."""
    port = harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-flood",
        extra=["--threads", "1"], prefix=["prlimit", "--nofile=160:160", "--"],
    )
    flood: list[socket.socket] = []
    try:
        assert "limits.client_connections lowered" in server.log_tail(20000)
        for _ in range(300):
            try:
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break  # the listen backlog is full: the flood is as big as it gets
        pid = _guard_pid(server)
        before = _cpu_seconds(pid)
        time.sleep(2)
        assert _cpu_seconds(pid) - before < 0.5, "the guard spins while the flood holds its connections"
        assert server.alive()
        harness.wait_until(lambda: "new connections closed" in server.log_tail(20000), 10, "the limit to be logged")
    finally:
        for connection in flood:
            connection.close()
    harness.wait_until(lambda: harness.get_version_ok(f"127.0.0.1:{port}"), 20, "the guard to serve after the flood")
    server.stop()


def _guard_pid(server) -> int:
    """The guard's pid: prlimit execs it, and setpriv (when present) execs prlimit, so it is the child's pid."""
    return server.proc.pid


@requires_guard
def test_upstream_by_host_name(milvus, log_dir):
    """`--upstream localhost:PORT`: the name is resolved off the event loop and pymilvus works through it."""
    port = harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, f"localhost:{milvus.port}", log_dir, name="milvus-guard-by-name",
    )
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token="root:Milvus", timeout=30)
        try:
            assert isinstance(client.list_collections(timeout=30), list)
        finally:
            client.close()
        assert server.alive()
    finally:
        server.stop()
