"""The audit store end to end: a pymilvus session through the guard, then `milvus-guard audit` and
`audit verify` on the store it wrote, tampering with sqlite3, and a read-only store."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

import harness
from conftest import DIRECT, _guard_binary

pytestmark = pytest.mark.skipif(DIRECT, reason="MILVUS_GUARD_E2E_DIRECT=1: no guard in front")

REFUSED = (MilvusException, grpc.RpcError)


def policy() -> str:
    return f"""\
users:
  root: {{ password: "{harness.pbkdf2('Milvus')}", roles: [admin] }}
  app:  {{ password: "{harness.pbkdf2('app-secret')}", roles: [writer] }}
roles:
  admin:
    - allow: ["*"]
      on: ["*"]
  writer:
    - allow: [read, write, Delete]
      on: ["default.ledger"]
"""


def guard_cli(work_dir, *args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), _guard_binary(), *args], cwd=work_dir, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def audited(milvus, log_dir):
    port, admin_port = harness.free_port(), harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-audit",
        config=f'admin: {{listen: "127.0.0.1:{admin_port}"}}\n', policies={"audit.yaml": policy()},
        ready=harness.grpc_answers,
    )
    server.admin_port = admin_port
    address = f"http://127.0.0.1:{port}"
    admin = MilvusClient(uri=address, token="root:Milvus", timeout=30)
    if admin.has_collection("ledger"):
        admin.drop_collection("ledger")
    admin.create_collection("ledger", dimension=4)
    admin.close()
    yield server, address
    server.stop()


def app_entries(work_dir) -> list[dict]:
    listed = guard_cli(work_dir, "audit", "--user", "app", "--format", "json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]


def test_session_is_audited_exactly_and_verifies(audited):
    server, address = audited
    app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
    try:
        app.insert("ledger", [{"id": i, "vector": [float(i), 0.5, 0.25, 0.125]} for i in range(10)])
        app.insert("ledger", [{"id": i, "vector": [float(i), 0.5, 0.25, 0.125]} for i in range(10, 15)])
        app.search("ledger", data=[[1.0, 0.5, 0.25, 0.125]], limit=1)  # a read: not recorded
        app.delete("ledger", filter="id in [1, 2]")
        with pytest.raises(REFUSED) as denied:
            app.drop_collection("ledger")
        assert "milvus-guard: app may not DropCollection on default.ledger" in str(denied.value)
    finally:
        app.close()

    # Outcome and refusal records, which no call waits for, may be committed up to the lazy-commit window (20 ms)
    # after the call ended (docs/audit.md), and `audit` starts in about that time: wait for them.
    harness.wait_until(
        lambda: len(entries := app_entries(server.work_dir)) >= 4 and all(e["outcome"] != "unknown" for e in entries),
        10, "the session's four calls and their outcomes in the audit store")
    entries = app_entries(server.work_dir)
    summary = [(e["rpc"], e["collection"], e["rows"], e["filter"], e["decision"], e["outcome"], e["status"])
               for e in entries]
    assert summary == [
        ("Insert", "ledger", 10, None, "allowed", "ok", 0),
        ("Insert", "ledger", 5, None, "allowed", "ok", 0),
        ("Delete", "ledger", None, "id in [1, 2]", "allowed", "ok", 0),
        ("DropCollection", "ledger", None, None, "denied", "failed", 7),
    ]
    for entry in entries:
        assert entry["principal"] == "app" and entry["auth"] == "password" and entry["db"] == "default"
        assert entry["client"].startswith("127.0.0.1:") and entry["tls"] is False
        assert len(entry["hash"]) == 64 and len(entry["prev_hash"]) == 64
    assert entries[3]["rule"] is None and "no rule allows it" in entries[3]["message"]
    assert entries[0]["rule"].startswith("policies/audit.yaml:")

    table = guard_cli(server.work_dir, "audit", "--user", "app")
    assert table.returncode == 0 and "DropCollection" in table.stdout and "denied" in table.stdout

    verify = guard_cli(server.work_dir, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("ok: ")


def test_milvus_failure_in_a_response_status_is_a_failed_outcome(audited):
    """Milvus answers most failures with gRPC OK and a failed common.Status in the response. A pymilvus Delete on a
    collection that does not exist is recorded as failed, with Milvus's code and reason, not as ok."""
    server, address = audited
    root = MilvusClient(uri=address, token="root:Milvus", timeout=30)
    try:
        with pytest.raises(MilvusException) as failed:
            root.delete("no_such_collection", filter="id in [1]")
    finally:
        root.close()
    listed = []
    def recorded() -> bool:
        nonlocal listed
        out = guard_cli(server.work_dir, "audit", "--rpc", "Delete", "--collection", "no_such_collection",
                        "--format", "json")
        listed = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        return bool(listed) and listed[-1]["outcome"] != "unknown"
    harness.wait_until(recorded, 10, "the Delete's outcome recorded")
    entry = listed[-1]
    assert (entry["decision"], entry["outcome"], entry["status"]) == ("allowed", "failed", 0), entry
    assert entry["milvus_code"] == failed.value.code, (entry, failed.value)
    assert entry["milvus_code"] != 0
    assert "does not exist" in entry["message"] or "not found" in entry["message"], entry
    table = guard_cli(server.work_dir, "audit", "--rpc", "Delete", "--collection", "no_such_collection")
    assert f"failed (milvus {entry['milvus_code']})" in table.stdout, table.stdout
    verify = guard_cli(server.work_dir, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_rows_milvus_deleted_are_recorded(audited):
    """A Delete by filter names no row count; the outcome records how many rows Milvus says it deleted (delete_cnt,
    read from the response after the deleted ids), and an Insert how many it inserted."""
    server, address = audited
    root = MilvusClient(uri=address, token="root:Milvus", timeout=30)
    try:
        if root.has_collection("counted"):
            root.drop_collection("counted")
        root.create_collection("counted", dimension=4)
        root.insert("counted", [{"id": n, "vector": [0.1, 0.2, 0.3, 0.4]} for n in range(50)])
        root.delete("counted", filter="id < 20")
    finally:
        root.close()
    listed = {}
    def recorded() -> bool:
        nonlocal listed
        out = guard_cli(server.work_dir, "audit", "--collection", "counted", "--format", "json")
        listed = {e["rpc"]: e for e in map(json.loads, out.stdout.splitlines()) if e["outcome"] != "unknown"}
        return {"Insert", "Delete"} <= listed.keys()
    harness.wait_until(recorded, 10, "the Insert's and the Delete's outcomes recorded")
    assert (listed["Insert"]["rows"], listed["Insert"]["rows_affected"]) == (50, 50), listed["Insert"]
    assert (listed["Delete"]["rows"], listed["Delete"]["rows_affected"]) == (None, 20), listed["Delete"]
    assert listed["Delete"]["filter"] == "id < 20"
    table = guard_cli(server.work_dir, "audit", "--collection", "counted", "--rpc", "Delete")
    assert "  20  " in table.stdout.splitlines()[-1], table.stdout


def test_filter_template_values_of_a_delete_are_recorded(audited):
    """pymilvus sends `delete(filter="id in {ids}", filter_params=…)` as an expression and its template values; the
    record holds both, so it says which rows were meant. (milvus-lite does not support templates and refuses the
    Delete in its response status, which is recorded too.)"""
    server, address = audited
    root = MilvusClient(uri=address, token="root:Milvus", timeout=30)
    try:
        if not root.has_collection("templated"):
            root.create_collection("templated", dimension=4)
        try:
            root.delete("templated", filter="id in {ids} and id > {low}", filter_params={"ids": [1, 2, 3], "low": 1})
        except MilvusException:
            pass  # milvus-lite: "unexpected character '{'"
    finally:
        root.close()
    entry = {}
    def recorded() -> bool:
        nonlocal entry
        out = guard_cli(server.work_dir, "audit", "--collection", "templated", "--rpc", "Delete", "--format", "json")
        lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        entry = lines[-1] if lines else {}
        return bool(entry) and entry["outcome"] != "unknown"
    harness.wait_until(recorded, 10, "the Delete recorded with its outcome")
    assert entry["filter"] == "id in {ids} and id > {low}", entry
    assert json.loads(entry["targets"]["filter_params"]) == {"ids": [1, 2, 3], "low": 1}, entry


def test_filters_of_refused_searches_and_queries_are_recorded(audited):
    """A refusal is recorded for reads too, with what the read asked for: a Search's filter (`dsl`) and a Query's
    `expr`, each with its template values."""
    server, address = audited
    app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
    try:
        with pytest.raises(REFUSED):  # app may read default.ledger only
            app.search("templated", data=[[0.1, 0.2, 0.3, 0.4]], limit=1, filter="id in {ids}",
                       filter_params={"ids": [4, 5]})
        with pytest.raises(REFUSED):
            app.query("templated", filter="id > {low}", filter_params={"low": 7}, output_fields=["id"])
    finally:
        app.close()
    entries: dict = {}

    def recorded() -> bool:  # refusal records are not waited for: they follow the answer
        listed = guard_cli(server.work_dir, "audit", "--collection", "templated", "--user", "app", "--format", "json")
        entries.update({e["rpc"]: e for e in map(json.loads, listed.stdout.splitlines()) if e["decision"] == "denied"})
        return "Search" in entries and "Query" in entries
    harness.wait_until(recorded, 10, "both refusals recorded")
    assert entries["Search"]["filter"] == "id in {ids}", entries
    assert json.loads(entries["Search"]["targets"]["filter_params"]) == {"ids": [4, 5]}, entries
    assert entries["Query"]["filter"] == "id > {low}", entries
    assert json.loads(entries["Query"]["targets"]["filter_params"]) == {"low": 7}, entries


def test_follow_streams_new_calls_with_their_outcomes_through_a_pipe(audited):
    """`audit --follow` as a SIEM shipper runs it: a pipe (fully buffered unless flushed), calls made after it
    started, each printed once with its outcome."""
    server, address = audited
    # From the newest call now: however long the follower takes to start, the calls below come after it.
    newest = guard_cli(server.work_dir, "audit", "--limit", "1", "--format", "json").stdout.splitlines()
    after = json.loads(newest[-1])["id"] if newest else 0
    follower = subprocess.Popen([_guard_binary(), "audit", "--follow", "--user", "app", "--after-id", str(after)],
                                cwd=server.work_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
        try:
            for n in (500, 501):
                app.insert("ledger", [{"id": n, "vector": [0.5, 0.5, 0.25, 0.125]}])
        finally:
            app.close()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(follower.stdout.readline() for _ in range(2)),
                                  daemon=True)
        reader.start()
        reader.join(20)
        assert len(lines) == 2, (lines, follower.poll())
        entries = [json.loads(line) for line in lines]
        assert [(e["rpc"], e["principal"], e["rows"], e["outcome"]) for e in entries] == [
            ("Insert", "app", 1, "ok"), ("Insert", "app", 1, "ok")], entries
        assert entries[0]["id"] < entries[1]["id"]
    finally:
        follower.kill()
        follower.wait(10)


def test_verify_fails_after_the_file_is_edited(audited, tmp_path):
    server, _ = audited
    sqlite3 = shutil.which("sqlite3")
    assert sqlite3, "sqlite3 CLI missing (scripts/lib/common.sh installs it)"
    copy = tmp_path / "copy.db"
    backup = subprocess.run([sqlite3, str(server.work_dir / "guard.db"), f".backup {copy}"], capture_output=True,
                            text=True, timeout=30)
    assert backup.returncode == 0, backup.stderr
    assert guard_cli(server.work_dir, "audit", "verify", "--store", str(copy)).returncode == 0
    edit = subprocess.run([sqlite3, str(copy), "UPDATE audit_records SET principal = 'root' WHERE principal = 'app' "
                           "AND rpc = 'DropCollection';"], capture_output=True, text=True, timeout=30)
    assert edit.returncode == 0, edit.stderr
    verify = guard_cli(server.work_dir, "audit", "verify", "--store", str(copy))
    assert verify.returncode != 0
    assert "altered" in (verify.stdout + verify.stderr)


def docs_verifier(tmp_path):
    """The Python verifier printed in docs/audit.md ("Verifying it yourself"), as a script."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    section = docs.split("### Verifying it yourself", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "verify_audit.py"
    script.write_text(code + "\nverify(sys.argv[1])\n")
    return lambda store: subprocess.run([sys.executable, str(script), str(store)], capture_output=True, text=True,
                                        timeout=60)


def test_interrupted_prune_verifies_and_a_second_prune_finishes(audited, tmp_path):
    """A prune appends its checkpoint first and then deletes oldest first: a store where it stopped half-way (the
    checkpoint written, the newest covered records still there) verifies with `audit verify` and with the script
    in docs/audit.md, both still catch a change to a covered record, and a second prune deletes the rest."""
    server, address = audited
    app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
    try:
        for i in range(4):
            app.insert("ledger", [{"id": 100 + i, "vector": [0.5, 0.5, 0.25, float(i)]}])
    finally:
        app.close()
    whole, interrupted = tmp_path / "whole.db", tmp_path / "interrupted.db"
    with sqlite3.connect(server.work_dir / "guard.db") as live:
        live.execute(f"VACUUM INTO '{whole}'")
    shutil.copy(whole, interrupted)
    pruned = guard_cli(server.work_dir, "audit", "prune", "--before", "0s", "--store", str(interrupted))
    assert pruned.returncode == 0 and "checkpoint appended" in pruned.stdout, pruned.stderr
    with sqlite3.connect(interrupted) as db:
        covered = json.loads(db.execute("SELECT targets FROM audit_records WHERE kind = 'checkpoint' "
                                        "ORDER BY seq DESC LIMIT 1").fetchone()[0])
        through = int(covered["pruned_through_sequence"])
        assert through >= 4
        # Put back the newest half of what it deleted: what a prune stopped half-way leaves.
        db.execute(f"ATTACH '{whole}' AS whole")
        db.execute("INSERT INTO audit_records SELECT * FROM whole.audit_records WHERE seq > ? AND seq <= ?",
                   (through // 2, through))
    docs_verify = docs_verifier(tmp_path)
    checked = guard_cli(server.work_dir, "audit", "verify", "--store", str(interrupted))
    assert checked.returncode == 0 and checked.stdout.startswith("ok: "), checked.stdout + checked.stderr
    by_script = docs_verify(interrupted)
    assert by_script.returncode == 0 and by_script.stdout.startswith("ok: "), by_script.stdout + by_script.stderr

    altered = tmp_path / "altered.db"
    shutil.copy(interrupted, altered)
    with sqlite3.connect(altered) as db:
        db.execute("UPDATE audit_records SET principal = 'mallory' WHERE seq = ?", (through,))
    checked = guard_cli(server.work_dir, "audit", "verify", "--store", str(altered))
    assert checked.returncode != 0 and f"record {through} altered" in checked.stdout + checked.stderr
    by_script = docs_verify(altered)
    assert by_script.returncode != 0 and f"record {through} was altered" in by_script.stderr

    finished = guard_cli(server.work_dir, "audit", "prune", "--before", "0s", "--store", str(interrupted))
    # The covered records left behind, and the first checkpoint (it is older than "now" too).
    assert finished.returncode == 0 and f"pruned {through - through // 2 + 1} records" in finished.stdout, \
        finished.stdout + finished.stderr
    for result in (guard_cli(server.work_dir, "audit", "verify", "--store", str(interrupted)),
                   docs_verify(interrupted)):
        assert result.returncode == 0 and result.stdout.startswith("ok: "), result.stdout + result.stderr


def test_guards_started_together_share_a_new_store(milvus, log_dir, tmp_path):
    """Guards started at the same moment on one new store file all come up: the ones that lose the race for the
    write lock (SQLite fails at once there rather than risk a deadlock) try again, then find it migrated. Then
    each records a mutation into the one chain, and once all have stopped the file alone holds it."""
    guards = 4
    for round_ in range(8):
        store = tmp_path / f"shared-{round_}.db"
        ports = [harness.free_port() for _ in range(guards)]
        # The pool outlives the guards: each dies with the thread that started it.
        with ThreadPoolExecutor(guards) as pool:
            starts = [pool.submit(harness.start_guard, _guard_binary(), port, milvus.address, log_dir,
                                  name=f"milvus-guard-together-{round_}", config=f'store: "{store}"\n',
                                  policies={"audit.yaml": policy()}, ready=harness.grpc_answers)
                      for port in ports]
            servers, failures = [], []
            for start in starts:
                try:
                    servers.append(start.result())
                except Exception as error:  # a guard that exited: its log is in the message
                    failures.append(str(error))
            try:
                assert not failures, failures[0]
                for port in ports:
                    client = MilvusClient(uri=f"http://127.0.0.1:{port}", token="root:Milvus", timeout=30)
                    try:
                        if not client.has_collection("together"):
                            client.create_collection("together", dimension=4)
                        client.insert("together", [{"id": port, "vector": [0.1, 0.2, 0.3, 0.4]}])
                    finally:
                        client.close()
            finally:
                for server in servers:
                    server.stop()
        assert all(server.proc.returncode == 0 for server in servers), [s.proc.returncode for s in servers]
        # The last guard to stop copied the WAL into the file and deleted it: the file alone (what `cp` takes
        # after the guards stopped) holds the whole store.
        assert not Path(f"{store}-wal").exists()
        copy = tmp_path / f"copy-{round_}.db"
        shutil.copyfile(store, copy)
        verify = guard_cli(tmp_path, "audit", "verify", "--store", str(copy))
        assert verify.returncode == 0, verify.stdout + verify.stderr
        inserts = guard_cli(tmp_path, "audit", "--store", str(copy), "--rpc", "Insert", "--format", "json")
        assert len(inserts.stdout.splitlines()) == guards, inserts.stdout + inserts.stderr


def _read_only_mount(store: Path, script: str, wal: bool = False) -> subprocess.CompletedProcess:
    """Runs `script` (sh) in a private mount namespace where /mnt/guard-ro is a read-only file system holding a copy
    of `store` as store.db (and an empty store.db-wal with `wal`); the working directory is /mnt/guard-ro."""
    setup = ("set -e; mkdir -p /mnt/guard-ro; mount -t tmpfs tmpfs /mnt/guard-ro; "
             f'cp "{store}" /mnt/guard-ro/store.db; ' + (": > /mnt/guard-ro/store.db-wal; " if wal else "")
             + "mount -o remount,ro /mnt/guard-ro; cd /mnt/guard-ro; ")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup + script],
                          capture_output=True, text=True, timeout=60)


def _stopped_store(milvus, log_dir, store: Path, collection: str, rows: int) -> Path:
    """`store` after a guard on it inserted `rows` rows into `collection` as root and stopped cleanly."""
    port = harness.free_port()
    server = harness.start_guard(_guard_binary(), port, milvus.address, log_dir, name=f"milvus-guard-{collection}",
                                 config=f'store: "{store}"\n', policies={"audit.yaml": policy()},
                                 ready=harness.grpc_answers)
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", token="root:Milvus", timeout=30)
        try:
            if not client.has_collection(collection):
                client.create_collection(collection, dimension=4)
            client.insert(collection, [{"id": n, "vector": [0.1, 0.2, 0.3, 0.4]} for n in range(rows)])
        finally:
            client.close()
    finally:
        server.stop()
    return store


def test_store_on_a_read_only_file_system_is_verified_and_listed(milvus, log_dir, tmp_path):
    """A security team verifies an evidence copy on a read-only mount. SQLite can't create the -shm file a
    WAL-mode store needs there; the CLI then reads the file as it is, since a stopped guard left everything in
    it (no -wal beside it)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or _read_only_mount(Path("/dev/null"), "true").returncode:
        pytest.skip("needs root and unshare --mount for a read-only file system")
    store = _stopped_store(milvus, log_dir, tmp_path / "evidence.db", "evidence", rows=3)
    binary = _guard_binary()
    checked = _read_only_mount(store, f'"{binary}" audit verify --store store.db; '
                                      f'"{binary}" audit --store store.db --rpc Insert --format json; ls -a')
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].startswith("ok: ") and " records" in lines[0], checked.stdout + checked.stderr
    inserts = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(e["collection"], e["rows"], e["outcome"]) for e in inserts] == [("evidence", 3, "ok")]
    assert "store.db-shm" not in lines
    # With a -wal file beside it, the file alone may lack the newest records: say so rather than read it.
    refused = _read_only_mount(store, f'"{binary}" audit verify --store store.db', wal=True)
    assert refused.returncode != 0
    assert "read-only file system, with a -wal file" in refused.stderr, refused.stdout + refused.stderr


def test_stopped_store_in_a_folder_the_reader_cannot_write_is_verified_and_listed(milvus, log_dir, tmp_path):
    """A security team's account may read a stopped guard's store but not write its folder, where SQLite would create
    the -shm file a WAL-mode store needs (SQLITE_READONLY_DIRECTORY): the CLI reads the file as it is, which holds
    every record once the guard stopped (no -wal beside it); with a -wal, or to --follow, it says why it can't."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as another user")
    store = _stopped_store(milvus, log_dir, tmp_path / "guard.db", "readers", rows=2)
    # A folder of root's that `nobody` may read and enter, not write; the binary copied there for it to run.
    folder = Path(tempfile.mkdtemp(prefix="guard-reader-"))
    try:
        os.chmod(folder, 0o755)
        shutil.copy(store, folder / "guard.db")
        os.chmod(folder / "guard.db", 0o644)
        binary = folder / "milvus-guard"
        shutil.copy(_guard_binary(), binary)
        os.chmod(binary, 0o755)

        def as_nobody(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(binary), "audit", "--store", str(folder / "guard.db"), *args], cwd=folder,
                                  user=65534, group=65534, capture_output=True, text=True, timeout=60)
        verify = as_nobody("verify")
        assert verify.returncode == 0 and verify.stdout.startswith("ok: "), verify.stdout + verify.stderr
        listed = as_nobody("--rpc", "Insert", "--format", "json")
        assert [(e["collection"], e["rows"]) for e in map(json.loads, listed.stdout.splitlines())] == [("readers", 2)]
        assert sorted(p.name for p in folder.iterdir()) == ["guard.db", "milvus-guard"]  # nothing created
        follow = as_nobody("--follow")
        assert follow.returncode == 1 and "no new record would be seen" in follow.stderr, follow.stderr
        # A -wal beside it: the file alone may lack records.
        (folder / "guard.db-wal").write_bytes(b"")
        refused = as_nobody("verify")
        assert refused.returncode != 0
        assert "in a folder this user can't write, with a -wal file" in refused.stderr, refused.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_full_disk_refuses_mutations_and_loses_no_record_once_space_is_freed(milvus, log_dir, tmp_path):
    """The store on a small file system that fills up: mutations are refused (RESOURCE_EXHAUSTED, `disk full`)
    while searches go on; the records nobody waits for (the outcomes of calls already forwarded, the refusals
    themselves) are kept and written once space is freed, so every call is in the chain and none shows `unknown`."""
    if (os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None
            or _read_only_mount(Path("/dev/null"), "true").returncode):
        pytest.skip("needs root, unshare --mount and nsenter for a small file system")
    small = tmp_path / "small"
    small.mkdir()
    port = harness.free_port()
    # The guard runs in a mount namespace of its own where `small` is a 1 MiB tmpfs; this test reaches that file
    # system through /proc/<pid>/root.
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-full", config=f'store: "{small}/guard.db"\n',
        policies={"audit.yaml": policy()}, ready=harness.grpc_answers,
        prefix=["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"', str(small)],
    )
    seen = Path(f"/proc/{server.proc.pid}/root") / str(small).lstrip("/")
    root = MilvusClient(uri=f"http://127.0.0.1:{port}", token="root:Milvus", timeout=30)
    app = MilvusClient(uri=f"http://127.0.0.1:{port}", token="app:app-secret", timeout=30)
    try:
        if root.has_collection("ledger"):
            root.drop_collection("ledger")
        root.create_collection("ledger", dimension=4)
        free = min(os.statvfs(seen).f_bavail * os.statvfs(seen).f_frsize, 1 << 20)  # the 1 MiB file system
        (seen / "filler").write_bytes(b"\0" * max(0, free - 48 * 1024))
        inserted, refusal = 0, None
        for n in range(500):
            try:
                app.insert("ledger", [{"id": n, "vector": [0.1, 0.2, 0.3, 0.4]}])
                inserted += 1
            except REFUSED as error:
                refusal = str(error)
                break
        assert refusal is not None, "the store never filled up"
        assert "milvus-guard: audit store unavailable: disk full" in refusal, refusal
        assert app.search("ledger", data=[[0.1, 0.2, 0.3, 0.4]], limit=1)[0]
        with pytest.raises(REFUSED):  # denied by the policy: its refusal record waits for space too
            app.drop_collection("ledger")
        (seen / "filler").unlink()
        harness.wait_until(lambda: _insert_ok(app), 15, "inserts to work again once space is freed")
        # SQLite resolves /proc/<pid>/root to this namespace's /, so the CLI reads the store from inside the guard's.
        inside = ["nsenter", "--target", str(server.proc.pid), "--mount"]
        entries: list[dict] = []

        def held_over_written() -> bool:
            # The writer adds them right after the commit that found space again: moments after that insert.
            listed = guard_cli(server.work_dir, "audit", "--store", f"{small}/guard.db", "--user", "app", "--format",
                               "json", "--limit", "10000", prefix=inside)
            assert listed.returncode == 0, listed.stderr
            entries[:] = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
            return (any(e["status"] == 8 for e in entries) and any(e["rpc"] == "DropCollection" for e in entries)
                    and all(e["outcome"] != "unknown" for e in entries))

        try:
            harness.wait_until(held_over_written, 10, "the held-over records to be written")
        except TimeoutError:
            pass  # the assertions below say what is missing
        verified = guard_cli(server.work_dir, "audit", "verify", "--store", f"{small}/guard.db", prefix=inside)
        assert verified.returncode == 0 and verified.stdout.startswith("ok: "), verified.stdout + verified.stderr
    finally:
        root.close()
        app.close()
        server.stop()
    inserts = [e for e in entries if e["rpc"] == "Insert"]
    unknown = [e for e in entries if e["outcome"] == "unknown"]
    assert not unknown, "\n".join(json.dumps(e) for e in entries)
    assert len([e for e in inserts if e["decision"] == "allowed" and e["outcome"] == "ok"]) == inserted + 1
    full = [e for e in inserts if e["status"] == 8]
    assert full and all(e["outcome"] == "failed" and e["message"].startswith(
        "milvus-guard: audit store unavailable: disk full") for e in full), full
    drops = [e for e in entries if e["rpc"] == "DropCollection"]
    assert [(e["decision"], e["status"]) for e in drops] == [("denied", 7)]


def test_logged_head_anchors_the_chain(audited, tmp_path):
    """The guard logs the chain's head ("audit chain head anchor=SEQ:HASH") when it first writes; verify
    --anchor with it passes, and fails once the newest records are deleted from a copy (a truncation the chain
    alone can't show)."""
    server, _ = audited
    harness.wait_until(lambda: "audit chain head" in server.log_tail(200000), 10, "the chain head in the log")
    line = next(l for l in server.log_tail(200000).splitlines() if "audit chain head" in l)
    anchor = line.split("anchor=")[1].split()[0]
    sequence = int(anchor.split(":")[0])
    verify = guard_cli(server.work_dir, "audit", "verify", "--anchor", anchor)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"anchor {sequence}: matches" in verify.stdout

    sqlite3 = shutil.which("sqlite3")
    copy = tmp_path / "truncated.db"
    backup = subprocess.run([sqlite3, str(server.work_dir / "guard.db"), f".backup {copy}"], capture_output=True,
                            text=True, timeout=30)
    assert backup.returncode == 0, backup.stderr
    cut = subprocess.run([sqlite3, str(copy), f"DELETE FROM audit_records WHERE seq >= {sequence};"],
                         capture_output=True, text=True, timeout=30)
    assert cut.returncode == 0, cut.stderr
    alone = guard_cli(server.work_dir, "audit", "verify", "--store", str(copy))
    assert alone.returncode == 0, "a truncated chain is still a valid chain"
    anchored = guard_cli(server.work_dir, "audit", "verify", "--store", str(copy), "--anchor", anchor)
    assert anchored.returncode == 1
    assert f"record {sequence} removed" in anchored.stdout + anchored.stderr


def test_names_sent_by_a_client_cannot_forge_log_lines_or_hide_table_rows(audited):
    """A collection name is whatever bytes a client sends. One holding a newline, a forged `audit chain head` line and
    terminal escapes that erase the line above is refused (no Milvus creates such a name); the guard's log and the
    audit table show it escaped, on the one line of the call, and the JSON listing shows it as sent."""
    server, address = audited
    forged = "2026-01-01T00:00:00+0000 notice milvus-guard: anchor=1:00ff [GuardCLI] audit chain head"
    name = f"ledger\n{forged}\x1b[1A\x1b[2K\u202e"
    channel = grpc.insecure_channel(address.removeprefix("http://"))
    try:
        drop = channel.unary_unary("/milvus.proto.milvus.MilvusService/DropCollection")
        encoded = name.encode()
        assert len(encoded) < 128  # a one-byte length
        request = bytes([0x1A, len(encoded)]) + encoded  # DropCollectionRequest.collection_name (field 3)
        token = base64.b64encode(b"app:app-secret").decode()
        with pytest.raises(grpc.RpcError) as refused:
            drop(request, metadata=[("authorization", token)], timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a Milvus name" in (refused.value.details() or "")
    finally:
        channel.close()
    harness.wait_until(lambda: "\\u{1B}[1A" in server.log_path.read_text(errors="replace"), 10, "the refusal logged")
    log = server.log_path.read_text(errors="replace")
    assert not any(line.startswith(forged) for line in log.splitlines()), log[-2000:]
    assert "\x1b" not in log
    assert "ledger\\n" + forged in log
    # The refusal record is committed up to the lazy-commit window (20 ms) after the answer.
    def listing() -> subprocess.CompletedProcess:
        return guard_cli(server.work_dir, "audit", "--user", "app", "--rpc", "DropCollection", "--limit", "1")
    harness.wait_until(lambda: "\\u{1B}" in listing().stdout, 10, "the refusal recorded")
    listed = listing()
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert len(rows) == 2 and "\x1b" not in listed.stdout, listed.stdout
    assert "default.ledger\\n" + forged + "\\u{1B}[1A\\u{1B}[2K\\u{202E}" in rows[1]
    sent = guard_cli(server.work_dir, "audit", "--user", "app", "--rpc", "DropCollection", "--limit", "1",
                     "--format", "json")
    assert json.loads(sent.stdout)["collection"] == name


def policy_entries(work_dir) -> list[dict]:
    listed = guard_cli(work_dir, "audit", "--format", "json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    return [e for e in (json.loads(line) for line in listed.stdout.splitlines() if line.strip())
            if e["action"] == "policy"]


def test_policy_loads_and_reloads_are_recorded_and_a_reload_waits_for_the_store(milvus, log_dir):
    """The policy in force at start and every reload are records in the chain, with each file's SHA-256, the mode
    and who sent the SIGHUP; a reload the store can't record is not applied until it can be."""
    port = harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-policy-records",
        policies={"audit.yaml": policy()}, ready=harness.grpc_answers,
    )
    address = f"http://127.0.0.1:{port}"
    folder, store = server.work_dir / "policies", server.work_dir / "guard.db"
    try:
        def digest(name: str) -> str:
            return hashlib.sha256((folder / name).read_bytes()).hexdigest()
        started = digest("audit.yaml")
        harness.wait_until(lambda: len(policy_entries(server.work_dir)) == 1, 10, "the policy record of the start")
        root = MilvusClient(uri=address, token="root:Milvus", timeout=30)
        try:
            if not root.has_collection("ledger"):
                root.create_collection("ledger", dimension=4)
        finally:
            root.close()
        app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
        try:
            with pytest.raises(REFUSED):  # decided by the start policy
                app.drop_collection("ledger")
        finally:
            app.close()

        # A broken file: rejected, and recorded with the files read and who asked.
        (folder / "broken.yaml").write_text("roles:\n  x: [\n")
        broken = digest("broken.yaml")
        os.kill(server.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: len(policy_entries(server.work_dir)) == 2, 10, "the rejected reload's record")
        (folder / "broken.yaml").unlink()

        # The store read-only: a changed policy (app may no longer read) is not applied, and the log says why.
        os.chmod(store, 0o444)
        try:
            (folder / "audit.yaml").write_text(policy().replace("[read, write, Delete]", "[write, Delete]"))
            reload = guard_cli(server.work_dir, "reload")
            assert reload.returncode == 0, reload.stderr
            harness.wait_until(lambda: "reload not applied" in server.log_path.read_text(errors="replace"), 10,
                               "the reload refused for want of a record")
            app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
            try:
                app.query("ledger", filter="id >= 0", limit=1)  # still allowed: the old policy is in force
            finally:
                app.close()
        finally:
            os.chmod(store, 0o644)

        # Writable again: the reload is tried again by itself, and applied once recorded.
        changed = digest("audit.yaml")
        harness.wait_until(lambda: len(policy_entries(server.work_dir)) == 3, 40, "the applied reload's record")
        app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
        try:
            with pytest.raises(REFUSED) as denied:
                app.query("ledger", filter="id >= 0", limit=1)
            assert "app may not Query on default.ledger" in str(denied.value)
        finally:
            app.close()

        start, rejected, loaded = policy_entries(server.work_dir)
        for entry in (start, rejected, loaded):
            assert entry["rpc"] is None and entry["principal"] is None and entry["client"] is None
            assert entry["targets"]["guard"].endswith(f" pid {server.proc.pid}")
        assert (start["decision"], start["outcome"], start["targets"]["trigger"]) == ("loaded", "ok", "start")
        assert start["targets"]["policies/audit.yaml"] == started and start["targets"]["mode"] == "enforce"
        # The digest over all files is that of `sha256sum`'s lines for them.
        assert start["targets"]["policy_sha256"] == hashlib.sha256(
            f"{started}  policies/audit.yaml\n".encode()).hexdigest()
        assert start["message"] == "2 users, 0 API keys, 2 rules from 1 file, mode enforce"

        assert (rejected["decision"], rejected["outcome"], rejected["targets"]["trigger"]) == (
            "rejected", "failed", "SIGHUP")
        assert rejected["targets"]["requested_by"].startswith(f"pid {os.getpid()}, uid {os.getuid()}")
        assert rejected["targets"]["policies/broken.yaml"] == broken
        assert "the old policy stays in force: the new policy does not load: policies/broken.yaml:" in (
            rejected["message"])

        assert (loaded["decision"], loaded["outcome"]) == ("loaded", "ok")
        assert loaded["targets"]["policies/audit.yaml"] == changed != started
        assert loaded["targets"]["policies_folder"] == str(folder.resolve())
        assert f"uid {os.getuid()}" in loaded["targets"]["requested_by"]
        rejected_only = guard_cli(server.work_dir, "audit", "--decision", "rejected", "--format", "json")
        assert [json.loads(line)["id"] for line in rejected_only.stdout.splitlines()] == [rejected["id"]]
        table = guard_cli(server.work_dir, "audit")
        assert "(policy)" in table.stdout and "rejected" in table.stdout
        # Each call names the policy record in force when it was decided (`policy_id`); policy records name none.
        listed = guard_cli(server.work_dir, "audit", "--format", "json", "--limit", "1000")
        calls = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [e["policy_id"] for e in calls if e["rpc"] == "DropCollection"] == [start["id"]]
        queries = [e for e in calls if e["rpc"] == "Query" and e["decision"] == "denied"]
        assert queries and {e["policy_id"] for e in queries} == {loaded["id"]}, queries
        assert all(e["policy_id"] is None for e in (start, rejected, loaded))
        verify = guard_cli(server.work_dir, "audit", "verify")
        assert verify.returncode == 0 and verify.stdout.startswith("ok: "), verify.stderr
    finally:
        server.stop()


def test_read_only_store_refuses_mutations_and_serves_reads(audited):
    server, address = audited
    store = server.work_dir / "guard.db"
    mode = store.stat().st_mode
    app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
    try:
        # A row to find, whatever ran before (the test alone: `-k read_only_store`).
        app.insert("ledger", [{"id": 98, "vector": [1.0, 0.5, 0.25, 0.125]}])
        os.chmod(store, 0o444)
        with pytest.raises(REFUSED) as refused:
            app.insert("ledger", [{"id": 99, "vector": [0.0, 0.5, 0.25, 0.125]}])
        assert "milvus-guard: audit store unavailable" in str(refused.value)
        assert app.search("ledger", data=[[1.0, 0.5, 0.25, 0.125]], limit=1, consistency_level="Strong")[0]
    finally:
        os.chmod(store, stat.S_IMODE(mode))
        app.close()
    # Writable again: mutations go through once the store recovers.
    app = MilvusClient(uri=address, token="app:app-secret", timeout=30)
    try:
        harness.wait_until(lambda: _insert_ok(app), 15, "inserts to work again after chmod")
    finally:
        app.close()


def _insert_ok(app: MilvusClient) -> bool:
    try:
        app.insert("ledger", [{"id": 100, "vector": [0.0, 0.5, 0.25, 0.125]}])
        return True
    except REFUSED:
        return False


def admin_get(server, path: str, credential: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.admin_port}{path}")
    if credential:
        request.add_header("Authorization", "Basic " + base64.b64encode(credential.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_admin_listener(audited):
    server, _ = audited
    assert admin_get(server, "/healthz")[0] == 200
    assert admin_get(server, "/metrics")[0] == 401
    assert admin_get(server, "/metrics", "root:wrong")[0] == 401
    assert admin_get(server, "/metrics", "app:app-secret")[0] == 403  # app has no admin action
    status, metrics = admin_get(server, "/metrics", "root:Milvus")
    assert status == 200
    assert 'milvus_guard_calls_total{rpc="Insert",decision="allowed",status="0"}' in metrics
    assert "milvus_guard_call_duration_seconds_bucket" in metrics
    assert "milvus_guard_audit_queue_depth" in metrics
    # The Delete on a missing collection above: gRPC OK, refused in Milvus's status.
    assert 'milvus_guard_milvus_failures_total{rpc="Delete"}' in metrics
    # The inserts above waited for their request records: the write-ahead wait histogram counted them.
    waits = [line for line in metrics.splitlines() if line.startswith("milvus_guard_audit_wait_seconds_count ")]
    assert waits and int(waits[0].split()[1]) > 0, metrics
    status, body = admin_get(server, "/readyz", "root:Milvus")
    assert status == 200, body
    status, body = admin_get(server, "/audit?user=app&rpc=DropCollection&decision=denied", "root:Milvus")
    assert status == 200, body
    entries = json.loads(body)
    assert entries and all(e["rpc"] == "DropCollection" and e["decision"] == "denied" for e in entries)
    status, body = admin_get(server, "/audit?decision=deny", "root:Milvus")  # a typo is not "no denials"
    assert status == 400 and "decision" in body, body
    status, body = admin_get(server, "/audit?rpc=DropCollection&outcome=failed", "root:Milvus")
    assert status == 200 and json.loads(body) and all(e["outcome"] == "failed" for e in json.loads(body)), body
    status, body = admin_get(server, "/audit?outcome=done", "root:Milvus")
    assert status == 400 and "outcome" in body, body
    assert admin_get(server, "/audit?since=yesterday", "root:Milvus")[0] == 400
    # Paging forward through everything, two calls at a time, as an exporter does: each call once, in id order.
    status, body = admin_get(server, "/audit?limit=10000", "root:Milvus")
    assert status == 200, body
    everything = [e["id"] for e in json.loads(body)]
    paged, cursor = [], 0
    for _ in range(len(everything)):
        status, body = admin_get(server, f"/audit?after_id={cursor}&limit=2", "root:Milvus")
        assert status == 200, body
        page = [e["id"] for e in json.loads(body)]
        if not page:
            break
        paged += page
        cursor = page[-1]
    assert paged[:len(everything)] == everything and len(everything) > 2
    assert admin_get(server, "/audit?after_id=-5", "root:Milvus")[0] == 400


def test_sigkill_under_load_leaves_every_acknowledged_insert_recorded(milvus, log_dir):
    """A guard killed with SIGKILL while inserts are in flight: every insert the client saw succeed has its
    request record, the chain verifies, and calls cut off show outcome `unknown` (never a missing request)."""
    import signal
    import threading

    port = harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-sigkill",
        policies={"audit.yaml": policy()}, ready=harness.grpc_answers,
    )
    address = f"http://127.0.0.1:{port}"
    admin = MilvusClient(uri=address, token="root:Milvus", timeout=30)
    if not admin.has_collection("ledger"):
        admin.create_collection("ledger", dimension=4)
    admin.close()
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer(offset: int) -> None:
        app = MilvusClient(uri=address, token="app:app-secret", timeout=5)
        n = 0
        try:
            while not stop.is_set() and n < 10_000:
                try:
                    app.insert("ledger", [{"id": offset + n, "vector": [0.0, 0.5, 0.25, 0.125]}])
                    acknowledged.append(offset + n)
                except Exception:  # the guard is gone: pymilvus raises whatever it raises
                    return
                n += 1
        finally:
            try:
                app.close()
            except Exception:
                pass

    threads = [threading.Thread(target=writer, args=(1_000_000 * (i + 1),), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    harness.wait_until(lambda: len(acknowledged) >= 40, 30, "inserts to be acknowledged")
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    acked = len(acknowledged)

    verify = guard_cli(server.work_dir, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    entries = app_entries(server.work_dir)
    inserts = [e for e in entries if e["rpc"] == "Insert"]
    assert len(inserts) >= acked, f"{acked} inserts acknowledged, {len(inserts)} recorded"
    assert {e["outcome"] for e in inserts} <= {"ok", "unknown"}
    # Outcomes not yet committed at the kill (at most the lazy-commit window's) show as unknown.
    assert any(e["outcome"] == "ok" for e in inserts)


def test_refusal_flood_shuts_the_address_out(milvus, log_dir):
    """A client without a credential that keeps getting refused (limits.refusals_per_minute: 20): its address is
    shut out, even with a valid password, and one record says so; every refusal before that has its own record."""
    port = harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-refusals",
        config="limits:\n  refusals_per_minute: 20\n", policies={"audit.yaml": policy()},
        ready=harness.grpc_answers,
    )
    address = f"127.0.0.1:{port}"
    try:
        drop = b"\x12\x07default\x1a\x06ledger"  # DropCollectionRequest: db_name, collection_name
        refused, shut_out = 0, None
        for _ in range(40):  # the readiness probe's call may have counted too
            try:
                harness.raw_call(address, "DropCollection", drop)
                pytest.fail("a call without a credential went through")
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                    shut_out = error
                    break
                refused += 1
        assert shut_out is not None and shut_out.code() == grpc.StatusCode.UNAVAILABLE, shut_out
        assert 10 <= refused <= 20
        with pytest.raises(REFUSED):
            MilvusClient(uri=f"http://{address}", token="root:Milvus", timeout=5).has_collection("ledger")
    finally:
        server.stop()

    listed = guard_cli(server.work_dir, "audit", "--format", "json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    drops = [e for e in entries if e["rpc"] == "DropCollection"]
    assert len(drops) == refused
    assert all(e["status"] == 16 and e["decision"] == "failed" and e["client"].startswith("127.0.0.1:")
               for e in drops)
    limit = [e for e in entries if e["rpc"] is None and e["action"] != "policy"]
    assert len(limit) == 1, limit
    assert limit[0]["status"] == 8
    assert limit[0]["message"].startswith("milvus-guard: 20 refused calls from 127.0.0.1 within a minute")
    verify = guard_cli(server.work_dir, "audit", "verify")
    assert verify.returncode == 0 and verify.stdout.startswith("ok: "), verify.stdout + verify.stderr
