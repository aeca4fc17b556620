"""Process and wire helpers for the end-to-end suite.

Everything here is bounded in time: servers are started in their own process group and killed on
teardown (and at interpreter exit, and when pytest itself dies: setpriv --pdeathsig), readiness is
polled with a deadline, and every socket has a timeout.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import grpc

GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
MILVUS_SERVICE = "/milvus.proto.milvus.MilvusService/"

_live: list["Server"] = []
_live_lock = threading.Lock()


def _die_with_parent(argv: list[str]) -> list[str]:
    """Prefixes `setpriv --pdeathsig KILL` (util-linux) when available: the child gets SIGKILL when
    the test process dies, however it dies. (Not a preexec_fn: that forces fork(), and grpcio's
    fork handlers in a child of this grpc-using process abort it now and then.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] + argv if setpriv else argv


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Polls `predicate` until it returns True; raises TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Server:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: Optional[dict] = None, cwd: Optional[Path] = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.work_dir: Optional[Path] = cwd
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            _die_with_parent(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
        with _live_lock:
            _live.append(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the whole group, SIGKILL after `grace` seconds."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers in the group, if any
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        with _live_lock:
            if self in _live:
                _live.remove(self)

    def log_tail(self, limit: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")


def stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in reversed(servers):
        server.stop(grace=2.0)


atexit.register(stop_all)


def tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def raw_call(address: str, method: str, payload: bytes = b"", timeout: float = 5.0, metadata=None) -> bytes:
    """One unary call with raw protobuf bytes (no generated stubs); raises grpc.RpcError."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            MILVUS_SERVICE + method if not method.startswith("/") else method,
            request_serializer=None,
            response_deserializer=None,
        )
        return call(payload, timeout=timeout, metadata=metadata)


def grpc_answers(address: str) -> bool:
    """True once the server answers a gRPC call at all (UNAUTHENTICATED counts: the guard is up)."""
    try:
        raw_call(address, GET_VERSION, b"", timeout=2.0)
        return True
    except grpc.RpcError as error:
        return error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def pbkdf2(password: str, iterations: int = 1000) -> str:
    """A policy-file password hash; the loader accepts 1000 iterations (and warns), which keeps tests fast."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2-sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def transport_policy() -> str:
    """The policy of the suite's shared guards, whose tests are about the transport, not RBAC: anonymous
    and root (password Milvus) may call everything. The RBAC tests start guards with their own policies."""
    return f"""\
users:
  anonymous: {{ roles: [all] }}
  root: {{ password: "{pbkdf2('Milvus')}", roles: [all] }}
roles:
  all:
    - allow: ["*"]
      on: ["*"]
"""


def get_version_ok(address: str) -> bool:
    try:
        raw_call(address, GET_VERSION, b"", timeout=2.0)
        return True
    except grpc.RpcError:
        return False


def wait_grpc_ready(address: str, server: Server, timeout: float) -> None:
    def ready() -> bool:
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode} before it was ready:\n{server.log_tail()}"
            )
        return get_version_ok(address)

    wait_until(ready, timeout, f"{server.name} to answer GetVersion on {address}", interval=0.2)


def start_milvus_lite(milvus_lite: str, data_dir: Path, port: int, log_dir: Path, name: str = "milvus-lite") -> Server:
    """Starts milvus-lite and waits until it answers GetVersion."""
    argv = [milvus_lite, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # its log lines reach the file as they happen
    server = Server(name, argv, log_dir / f"{name}.log", env=env)
    try:
        wait_grpc_ready(f"127.0.0.1:{port}", server, timeout=90)
    except BaseException:
        server.stop()
        raise
    return server


def start_guard(
    binary: str,
    port: int,
    upstream: str,
    log_dir: Path,
    name: str = "milvus-guard",
    extra: Optional[list[str]] = None,
    ready: Optional[Callable[[str], bool]] = None,
    config: str = "",
    policies: Optional[dict[str, str]] = None,
    prefix: Optional[list[str]] = None,
) -> Server:
    """Starts the guard in a folder of its own, `<log_dir>/<name>-<port>`, holding `guard.yaml` (`config`)
    and `policies/` (file name -> text; default: `transport_policy()`); `server.work_dir` names it.
    Readiness is GetVersion through it, or whatever `ready` says. `prefix` runs it under another command
    (`prlimit --nofile=…`)."""
    argv = (prefix or []) + [binary, "serve", "--listen", f"127.0.0.1:{port}", "--upstream", upstream] + (extra or [])
    # A folder of its own: the guard reads ./guard.yaml and ./policies, and a developer's guard.yaml in the
    # repository root must not change what the suite tests.
    work_dir = log_dir / f"{name}-{port}"
    (work_dir / "policies").mkdir(parents=True)
    (work_dir / "guard.yaml").write_text(config)
    for file_name, text in (policies if policies is not None else {"transport.yaml": transport_policy()}).items():
        (work_dir / "policies" / file_name).write_text(text)
    server = Server(name, argv, log_dir / f"{name}.log", cwd=work_dir)
    server.work_dir = work_dir
    address = f"127.0.0.1:{port}"
    check = ready or get_version_ok

    def up() -> bool:
        if not server.alive():
            raise RuntimeError(f"{name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        return check(address)

    try:
        wait_until(up, 60, f"{name} to serve on {address}", interval=0.1)
    except BaseException:
        server.stop()
        raise
    return server
