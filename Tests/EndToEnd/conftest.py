"""Fixtures: milvus-lite on a free loopback port, milvus-guard in front of it.

Environment:
  MILVUS_GUARD_BIN         the milvus-guard binary (default: .build/debug, then .build/release)
  MILVUS_GUARD_E2E_DIRECT  "1": no guard at all; the "guard" fixtures point at milvus-lite itself and
                           the tests about the guard's own answers are skipped (to debug the suite)
  MILVUS_LITE              the milvus-lite executable (default: the one beside this Python)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

import harness
from rawh2 import SilentUpstream

REPO_ROOT = Path(__file__).resolve().parents[2]
DIRECT = os.environ.get("MILVUS_GUARD_E2E_DIRECT") == "1"


def _guard_binary() -> Optional[str]:
    configured = os.environ.get("MILVUS_GUARD_BIN")
    if configured:
        return configured
    for config in ("debug", "release"):
        candidate = REPO_ROOT / ".build" / config / "milvus-guard"
        if candidate.exists():
            return str(candidate)
    return None


def _milvus_lite() -> Optional[str]:
    configured = os.environ.get("MILVUS_LITE")
    if configured:
        return configured
    beside = Path(sys.executable).parent / "milvus-lite"
    if beside.exists():
        return str(beside)
    return shutil.which("milvus-lite")


def pytest_configure(config):
    # A SIGTERM to pytest unwinds normally, so fixtures and the atexit hook stop the servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if _milvus_lite() is None:
        raise pytest.UsageError("milvus-lite not found: install milvus-lite in this Python or set MILVUS_LITE")
    if not DIRECT:
        binary = _guard_binary()
        if binary is None or not os.access(binary, os.X_OK):
            raise pytest.UsageError(
                f"milvus-guard binary not found ({binary or 'no MILVUS_GUARD_BIN, no .build/*/milvus-guard'}); "
                "build it or set MILVUS_GUARD_BIN (or MILVUS_GUARD_E2E_DIRECT=1 to run without the guard)"
            )


def pytest_report_header(config):
    if DIRECT:
        return "milvus-guard e2e: DIRECT mode (no guard; guard-specific tests skip)"
    return f"milvus-guard e2e: guard {_guard_binary()}, milvus-lite {_milvus_lite()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        with harness._live_lock:
            servers = list(harness._live)
        for server in servers:
            report.sections.append((f"{server.name} log (tail)", server.log_tail()))


requires_guard = pytest.mark.skipif(DIRECT, reason="MILVUS_GUARD_E2E_DIRECT=1: no guard in front")


@dataclass
class Endpoint:
    host: str
    port: int
    server: Optional[harness.Server] = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        return f"http://{self.address}"


@dataclass
class Stack:
    """milvus-lite plus the guard in front of it, owned by one test."""

    milvus: Endpoint
    guard: Endpoint
    data_dir: Path
    log_dir: Path

    def stop_milvus(self) -> None:
        self.milvus.server.stop()

    def start_milvus(self) -> None:
        self.milvus.server = harness.start_milvus_lite(
            _milvus_lite(), self.data_dir, self.milvus.port, self.log_dir, name="milvus-lite-restarted"
        )


def _start_guard(port: int, upstream: str, log_dir: Path, name: str = "milvus-guard", ready=None) -> harness.Server:
    return harness.start_guard(_guard_binary(), port, upstream, log_dir, name=name, ready=ready)


def _guard_endpoint(milvus: Endpoint, log_dir: Path, name: str = "milvus-guard") -> Endpoint:
    if DIRECT:
        return milvus
    port = harness.free_port()
    return Endpoint("127.0.0.1", port, _start_guard(port, milvus.address, log_dir, name=name))


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def milvus(tmp_path_factory, log_dir) -> Endpoint:
    """The shared milvus-lite for most tests."""
    port = harness.free_port()
    server = harness.start_milvus_lite(_milvus_lite(), tmp_path_factory.mktemp("milvus-data"), port, log_dir)
    yield Endpoint("127.0.0.1", port, server)
    server.stop()


@pytest.fixture(scope="session")
def guard(milvus, log_dir) -> Endpoint:
    """The shared milvus-guard in front of `milvus`."""
    endpoint = _guard_endpoint(milvus, log_dir)
    yield endpoint
    if endpoint.server is not None and endpoint is not milvus:
        endpoint.server.stop()


@pytest.fixture
def stack(tmp_path, log_dir) -> Stack:
    """A private milvus-lite and guard, for tests that stop and restart milvus-lite."""
    data_dir = tmp_path / "milvus-data"
    port = harness.free_port()
    milvus = Endpoint("127.0.0.1", port, harness.start_milvus_lite(_milvus_lite(), data_dir, port, log_dir, "milvus-lite-private"))
    guard = _guard_endpoint(milvus, log_dir, name="milvus-guard-private")
    yield Stack(milvus, guard, data_dir, log_dir)
    if guard is not milvus:
        guard.server.stop()
    if milvus.server is not None:
        milvus.server.stop()


@pytest.fixture(scope="module")
def silent_stack(log_dir):
    """A guard in front of an HTTP/2 upstream that records requests and never answers them."""
    if DIRECT:
        pytest.skip("MILVUS_GUARD_E2E_DIRECT=1: no guard in front")
    upstream = SilentUpstream()
    port = harness.free_port()
    server = _start_guard(
        port, upstream.address, log_dir, name="milvus-guard-silent", ready=lambda a: harness.tcp_accepts(*_split(a))
    )
    yield Endpoint("127.0.0.1", port, server), upstream
    server.stop()
    upstream.close()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@pytest.fixture
def client(guard):
    from pymilvus import MilvusClient

    c = MilvusClient(uri=guard.uri, timeout=30)
    yield c
    c.close()


@pytest.fixture
def direct_client(milvus):
    from pymilvus import MilvusClient

    c = MilvusClient(uri=milvus.uri, timeout=30)
    yield c
    c.close()
