"""Identity and RBAC end to end: pymilvus through the guard to milvus-lite, with policies of the tests' own.

`root` (admin) sets collections up; `app` may read and write default.books only; `reader` may read
default.*; the API key `ingest-token` writes default.books too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

import harness
from conftest import DIRECT, _guard_binary

pytestmark = pytest.mark.skipif(DIRECT, reason="MILVUS_GUARD_E2E_DIRECT=1: no guard in front")

# pymilvus raises the gRPC error itself for PERMISSION_DENIED (its text is what the user sees), and
# MilvusException for what it wraps.
REFUSED = (MilvusException, grpc.RpcError)

ROWS = [{"id": i, "vector": [float(i), 0.5, 0.25, 0.125]} for i in range(20)]


def policy(app_password: str = "app-secret") -> str:
    key = hashlib.sha256(b"ingest-token").hexdigest()
    return f"""\
users:
  root:   {{ password: "{harness.pbkdf2('Milvus')}", roles: [admin] }}
  app:    {{ password: "{harness.pbkdf2(app_password)}", roles: [writer] }}
  reader: {{ password: "{harness.pbkdf2('reader-secret')}", roles: [reader] }}
api_keys:
  ingest: {{ sha256: "{key}", roles: [writer] }}
roles:
  admin:
    - allow: ["*"]
      on: ["*"]
  writer:
    - allow: [read, write]
      on: ["default.books"]
  reader:
    - allow: [read]
      on: ["default.*"]
"""


def start(milvus, log_dir, name: str, config: str = "", policies: dict | None = None) -> tuple[harness.Server, str]:
    port = harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name=name, config=config,
        policies=policies if policies is not None else {"test.yaml": policy()}, ready=harness.grpc_answers,
    )
    return server, f"127.0.0.1:{port}"


def client(address: str, token: str) -> MilvusClient:
    return MilvusClient(uri=f"http://{address}", token=token, timeout=30)


def authorization(token: str) -> list[tuple[str, str]]:
    return [("authorization", base64.b64encode(token.encode()).decode())]


def has_collection_request(name: str) -> bytes:
    """HasCollectionRequest: db_name (2) = default, collection_name (3) = name."""
    return b"\x12\x07default" + b"\x1a" + bytes([len(name)]) + name.encode()


def wait_for_log(server: harness.Server, text: str, timeout: float = 10) -> None:
    harness.wait_until(lambda: text in server.log_path.read_text(errors="replace"), timeout, f"log line {text!r}")


@pytest.fixture(scope="module")
def rbac(milvus, log_dir):
    server, address = start(milvus, log_dir, "milvus-guard-rbac")
    admin = client(address, "root:Milvus")
    for name in ("books", "movies"):
        if admin.has_collection(name):
            admin.drop_collection(name)
        admin.create_collection(name, dimension=4)
    admin.close()
    yield server, address
    server.stop()


def test_app_writes_and_searches_books_but_cannot_drop_or_touch_others(rbac):
    _, address = rbac
    app = client(address, "app:app-secret")
    try:
        assert app.insert("books", ROWS)["insert_count"] == len(ROWS)
        hits = app.search("books", data=[[3.0, 0.5, 0.25, 0.125]], limit=1)
        assert hits[0][0]["id"] == 3
        with pytest.raises(REFUSED) as denied:
            app.drop_collection("books")
        # pymilvus shows the guard's sentence to its user.
        assert "milvus-guard: app may not DropCollection on default.books (no rule allows it)" in str(denied.value)
        with pytest.raises(REFUSED) as other:
            app.insert("movies", ROWS)
        assert "milvus-guard: app may not" in str(other.value) and "default.movies" in str(other.value)
    finally:
        app.close()
    admin = client(address, "root:Milvus")
    assert admin.has_collection("books")  # the drop never reached Milvus
    admin.close()


def test_reader_cannot_insert(rbac):
    _, address = rbac
    reader = client(address, "reader:reader-secret")
    try:
        assert reader.query("books", filter="id >= 0", output_fields=["count(*)"]) is not None
        with pytest.raises(REFUSED) as denied:
            reader.insert("books", ROWS[:1])
        assert "milvus-guard: reader may not Insert on default.books (no rule allows it)" in str(denied.value)
    finally:
        reader.close()


@pytest.mark.parametrize("token", ["app:wrong-password", "mallory:app-secret"])
def test_wrong_password_and_unknown_user_are_unauthenticated(rbac, token):
    _, address = rbac
    with pytest.raises(grpc.RpcError) as failure:
        harness.raw_call(address, "HasCollection", has_collection_request("books"), metadata=authorization(token))
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    user = token.split(":")[0]
    assert failure.value.details() == f'milvus-guard: wrong user name or password for "{user}"'


def test_no_credentials_are_unauthenticated(rbac):
    _, address = rbac
    with pytest.raises(grpc.RpcError) as failure:
        harness.raw_call(address, "HasCollection", has_collection_request("books"))
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert failure.value.details().startswith("milvus-guard: no credentials")


def test_api_key_works(rbac):
    _, address = rbac
    ingest = client(address, "ingest-token")
    try:
        assert ingest.insert("books", ROWS[:5])["insert_count"] == 5
        with pytest.raises(REFUSED) as denied:
            ingest.drop_collection("books")
        assert "milvus-guard: ingest may not DropCollection" in str(denied.value)
    finally:
        ingest.close()


def test_shadow_mode_forwards_and_logs_would_deny(milvus, log_dir):
    server, address = start(milvus, log_dir, "milvus-guard-shadow", config="mode: shadow\n")
    try:
        admin = client(address, "root:Milvus")
        if not admin.has_collection("shadowed"):
            admin.create_collection("shadowed", dimension=4)
        admin.close()
        app = client(address, "app:app-secret")
        app.drop_collection("shadowed")  # the policy denies it; shadow mode forwards it
        app.close()
        admin = client(address, "root:Milvus")
        assert not admin.has_collection("shadowed")
        admin.close()
        wait_for_log(server, "would deny")
        log = server.log_path.read_text(errors="replace")
        assert "app may not DropCollection on default.shadowed" in log
    finally:
        server.stop()


def test_reload_keeps_old_policy_on_broken_yaml_and_applies_changed_password(milvus, log_dir):
    server, address = start(milvus, log_dir, "milvus-guard-reload")
    try:
        app = client(address, "app:app-secret")
        assert app.has_collection("books") in (True, False)
        app.close()

        # A broken file: SIGHUP rejects it and the old policy stays in force. (`milvus-guard reload`
        # checks the files first and does not even signal.)
        (server.work_dir / "policies" / "broken.yaml").write_text("roles:\n  x: [\n")
        reload = subprocess.run([_guard_binary(), "reload"], cwd=server.work_dir, capture_output=True, text=True,
                                timeout=30)
        assert reload.returncode == 2, reload.stderr
        assert "broken.yaml:" in reload.stderr
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for_log(server, "reload rejected")
        app = client(address, "app:app-secret")
        assert app.has_collection("books") in (True, False)
        app.close()

        # A changed password: in force once `milvus-guard reload` has run.
        (server.work_dir / "policies" / "broken.yaml").unlink()
        (server.work_dir / "policies" / "test.yaml").write_text(policy(app_password="changed-secret"))
        reload = subprocess.run([_guard_binary(), "reload"], cwd=server.work_dir, capture_output=True, text=True,
                                timeout=30)
        assert reload.returncode == 0, reload.stderr
        wait_for_log(server, "policy reloaded")
        with pytest.raises(grpc.RpcError) as failure:
            harness.raw_call(address, "HasCollection", has_collection_request("books"),
                             metadata=authorization("app:app-secret"))
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        harness.raw_call(address, "HasCollection", has_collection_request("books"),
                         metadata=authorization("app:changed-secret"))
    finally:
        server.stop()


def test_failed_attempts_are_rate_limited_per_address(milvus, log_dir):
    server, address = start(milvus, log_dir, "milvus-guard-limit", config="limits:\n  auth_failures_per_minute: 3\n")
    try:
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as failure:
                harness.raw_call(address, "HasCollection", has_collection_request("books"),
                                 metadata=authorization("app:guess"))
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as failure:
            harness.raw_call(address, "HasCollection", has_collection_request("books"),
                             metadata=authorization("app:app-secret"))
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many failed authentications" in failure.value.details()
    finally:
        server.stop()


def test_a_collection_named_only_by_its_id_needs_a_rule_covering_every_collection(rbac):
    """DescribeCollection, ShowPartitions, GetReplicas (pymilvus's describe_replica) and others may name a collection by
    its ID alone, which the guard can't turn into a name, and which Milvus looks up in every database: `app`
    (default.books only) is refused even with books's own ID, `reader` (default.*) too, `root` (`*`) is allowed, and
    the record keeps the ID."""
    from pymilvus.grpc_gen import milvus_pb2

    server, address = rbac
    admin = client(address, "root:Milvus")
    books_id = admin.describe_collection("books")["collection_id"] or 449812345678  # milvus-lite's IDs are all 0
    admin.close()
    by_id = milvus_pb2.DescribeCollectionRequest(db_name="default", collectionID=books_id).SerializeToString()
    with pytest.raises(grpc.RpcError) as denied:
        harness.raw_call(address, "DescribeCollection", by_id, metadata=authorization("app:app-secret"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, denied.value
    assert (
        f"milvus-guard: app may not DescribeCollection on <collection ID {books_id}> (no rule allows it)"
        in (denied.value.details() or "")
    ), denied.value.details()
    with pytest.raises(grpc.RpcError) as denied:
        harness.raw_call(address, "DescribeCollection", by_id, metadata=authorization("reader:reader-secret"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, denied.value
    harness.raw_call(address, "DescribeCollection", by_id, metadata=authorization("root:Milvus"))
    by_name = milvus_pb2.DescribeCollectionRequest(collection_name="books", collectionID=books_id).SerializeToString()
    harness.raw_call(address, "DescribeCollection", by_name, metadata=authorization("app:app-secret"))
    listed = subprocess.run(
        [_guard_binary(), "audit", "--store", str(server.work_dir / "guard.db"), "--user", "app",
         "--rpc", "DescribeCollection", "--decision", "denied", "--format", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert f'"collection_ids":"{books_id}"' in listed, listed
