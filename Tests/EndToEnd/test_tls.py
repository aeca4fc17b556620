"""TLS on the client side of the guard: pymilvus and grpcio over TLS (ALPN h2), certificates made per run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient

import harness
from conftest import DIRECT, _guard_binary

pytestmark = pytest.mark.skipif(DIRECT, reason="MILVUS_GUARD_E2E_DIRECT=1: no guard in front")


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1, with the openssl CLI."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca-key.pem", "ca.pem", "key.pem", "csr.pem", "cert.pem"))
    extensions = folder / "ext.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=milvus-guard e2e CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(extensions))
    return ca, cert, key


@pytest.fixture(scope="module")
def tls_guard(milvus, log_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca, cert, key = _certificates(folder)
    port = harness.free_port()
    config = f'listen: "127.0.0.1:{port}"\nupstream: "{milvus.address}"\ntls: {{cert: {cert}, key: {key}}}\n'
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-tls", config=config,
        ready=lambda address: harness.tcp_accepts("127.0.0.1", port),
    )
    yield port, ca
    server.stop()


def test_pymilvus_over_tls(tls_guard):
    port, ca = tls_guard
    client = MilvusClient(uri=f"https://localhost:{port}", server_pem_path=str(ca), server_name="localhost", timeout=30)
    try:
        name = "tls_flow"
        if client.has_collection(name):
            client.drop_collection(name)
        client.create_collection(name, dimension=4)
        client.insert(name, [{"id": i, "vector": [i, 0.5, 0.25, 0.125]} for i in range(10)])
        hits = client.search(name, data=[[3, 0.5, 0.25, 0.125]], limit=1)
        assert hits[0][0]["id"] == 3
        client.drop_collection(name)
    finally:
        client.close()


def test_grpcio_over_tls_and_plaintext_refused(tls_guard):
    port, ca = tls_guard
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        version = channel.unary_unary(harness.MILVUS_SERVICE + "GetVersion", request_serializer=None,
                                      response_deserializer=None)
        assert version(b"", timeout=10) is not None
    # A client that does not speak TLS gets no gRPC answer from a TLS listener.
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        version = channel.unary_unary(harness.MILVUS_SERVICE + "GetVersion", request_serializer=None,
                                      response_deserializer=None)
        with pytest.raises(grpc.RpcError) as failure:
            version(b"", timeout=5)
        assert failure.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _client_certificate(folder: Path, ca: Path, common_name: str) -> tuple[Path, Path]:
    """A client certificate signed by the test CA (whose key sits beside it)."""
    key, csr, cert = folder / f"{common_name}-key.pem", folder / f"{common_name}.csr", folder / f"{common_name}.pem"
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={common_name}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(folder / "ca-key.pem"), "-CAcreateserial",
        "-out", str(cert), "-days", "2")
    return key, cert


def test_client_certificate_names_the_principal(milvus, log_dir, tmp_path):
    """With tls.client_ca, a certificate whose subject matches a user's tls_subject is that user."""
    ca, cert, key = _certificates(tmp_path)
    svc_key, svc_cert = _client_certificate(tmp_path, ca, "svc")
    port = harness.free_port()
    config = f"tls: {{cert: {cert}, key: {key}, client_ca: {ca}}}\n"
    policy = """\
users:
  svc: { tls_subject: "CN=svc", roles: [reader] }
roles:
  reader:
    - allow: [read]
      on: ["default.*"]
"""
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-mtls", config=config,
        policies={"svc.yaml": policy}, ready=lambda address: harness.tcp_accepts("127.0.0.1", port),
    )
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca.read_bytes(), private_key=svc_key.read_bytes(), certificate_chain=svc_cert.read_bytes()
        )
        request = b"\x12\x07default\x1a\x05books"  # HasCollectionRequest(db_name, collection_name)
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            call = lambda method: channel.unary_unary(harness.MILVUS_SERVICE + method, request_serializer=None,
                                                      response_deserializer=None)
            assert call("HasCollection")(request, timeout=10) is not None
            with pytest.raises(grpc.RpcError) as denied:
                call("DropCollection")(request, timeout=10)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert denied.value.details().startswith("milvus-guard: svc may not DropCollection on default.books")

        def s_client(*args: str) -> str:
            """An openssl s_client handshake as svc; stdin stays open a second, so that tickets would arrive."""
            command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "h2", "-CAfile", str(ca),
                       "-cert", str(svc_cert), "-key", str(svc_key), *args]
            done = subprocess.run(["sh", "-c", 'sleep 1 | "$@"', "sh", *command], capture_output=True, text=True,
                                  timeout=30)
            return done.stdout + done.stderr

        # Finite-field key exchange is not offered: ffdhe8192 cost the guard ~100 ms of CPU per handshake.
        refused = s_client("-tls1_3", "-groups", "ffdhe8192")
        assert "alert handshake failure" in refused and "Cipher is (NONE)" in refused, refused
        # No session to resume with client certificates: every connection verifies its certificate again (a
        # resumed session kept the identity of a certificate that had expired since).
        session = tmp_path / "session.pem"
        first = s_client("-sess_out", str(session))
        assert "New, TLSv1.3" in first, first
        assert not session.exists() or "Reused" not in s_client("-sess_in", str(session))

        # Handshakes the guard refused are recorded (a gRPC client only sees UNAVAILABLE) and logged.
        subprocess.run(["sh", "-c", 'sleep 1 | "$@"', "sh", "openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-alpn", "h2", "-CAfile", str(ca)], capture_output=True, timeout=30)  # no certificate

        def refusals() -> list[dict]:
            listed = subprocess.run([_guard_binary(), "audit", "--rpc", "TLS", "--format", "json"],
                                    cwd=server.work_dir, capture_output=True, text=True, timeout=60)
            return [json.loads(line) for line in listed.stdout.splitlines()]
        harness.wait_until(lambda: len(refusals()) == 2, 10, "the two refused handshakes in the audit store")
        key_share, no_certificate = refusals()
        assert "no suitable key share" in key_share["message"], key_share
        assert "peer did not return a certificate" in no_certificate["message"], no_certificate
        for refused in (key_share, no_certificate):
            assert (refused["decision"], refused["status"], refused["tls"]) == ("failed", 14, True)
            assert refused["message"].startswith("TLS: ") and refused["client"].startswith("127.0.0.1:")
        assert "TLS connection refused" in server.log_path.read_text(errors="replace")
    finally:
        server.stop()


def test_connection_stops_being_its_user_when_its_certificate_expires(milvus, log_dir, tmp_path):
    """A connection outlives the handshake that verified its certificate: once the certificate expires, its calls are
    refused UNAUTHENTICATED on the same connection (a red-team run went on as the user for as long as it liked)."""
    import datetime
    import time

    ca, cert, key = _certificates(tmp_path)
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    svc_key, csr = tmp_path / "short-key.pem", tmp_path / "short.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(svc_key), "-out", str(csr), "-subj", "/CN=svc")
    (tmp_path / "index.txt").write_text("")
    (tmp_path / "serial").write_text("1000\n")
    (tmp_path / "ca.cnf").write_text(
        f"[ca]\ndefault_ca = own\n[own]\ndatabase = {tmp_path}/index.txt\nnew_certs_dir = {tmp_path}\n"
        f"serial = {tmp_path}/serial\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n")
    ends = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=6)
    svc_cert = tmp_path / "short.pem"
    run("ca", "-batch", "-config", str(tmp_path / "ca.cnf"), "-cert", str(ca), "-keyfile", str(tmp_path / "ca-key.pem"),
        "-in", str(csr), "-out", str(svc_cert), "-notext", "-startdate", "20250101000000Z",
        "-enddate", ends.strftime("%Y%m%d%H%M%SZ"))
    port = harness.free_port()
    policy = 'users:\n  svc: { tls_subject: "CN=svc", roles: [reader] }\nroles:\n  reader:\n    - allow: [read]\n      on: ["default.*"]\n'
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-expiry",
        config=f"tls: {{cert: {cert}, key: {key}, client_ca: {ca}}}\n", policies={"svc.yaml": policy},
        ready=lambda address: harness.tcp_accepts("127.0.0.1", port),
    )
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca.read_bytes(), private_key=svc_key.read_bytes(), certificate_chain=svc_cert.read_bytes()
        )
        request = b"\x12\x07default\x1a\x05books"  # HasCollectionRequest(db_name, collection_name)
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            has = channel.unary_unary(harness.MILVUS_SERVICE + "HasCollection", request_serializer=None,
                                      response_deserializer=None)
            assert has(request, timeout=10) is not None
            time.sleep(max(0.0, (ends - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1.5)
            with pytest.raises(grpc.RpcError) as expired:
                has(request, timeout=10)
            assert expired.value.code() == grpc.StatusCode.UNAUTHENTICATED, expired.value
            assert "the client certificate of svc has expired" in expired.value.details()
    finally:
        server.stop()



def test_revoked_client_certificate_is_refused_after_a_reload(milvus, log_dir, tmp_path):
    """tls.client_crl: revoking a client certificate and reloading (SIGHUP) refuses it at its next handshake and the
    calls of the connections it already has (UNAUTHENTICATED, not retried), while other certificates go on; the
    policy records say which CRL was in force."""
    import os
    import signal

    ca, cert, key = _certificates(tmp_path)
    svc_key, svc_cert = _client_certificate(tmp_path, ca, "svc")
    other_key, other_cert = _client_certificate(tmp_path, ca, "other")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    (tmp_path / "index.txt").write_text("")
    (tmp_path / "crl.cnf").write_text(
        f"[ca]\ndefault_ca = own\n[own]\ndatabase = {tmp_path}/index.txt\ndefault_md = sha256\ndefault_crl_days = 2\n")
    crl = tmp_path / "clients.crl"
    ca_args = ["-config", str(tmp_path / "crl.cnf"), "-keyfile", str(tmp_path / "ca-key.pem"), "-cert", str(ca)]
    run("ca", "-gencrl", "-out", str(crl), *ca_args)
    policy = ('users:\n  svc: { tls_subject: "CN=svc", roles: [reader] }\n'
              '  other: { tls_subject: "CN=other", roles: [reader] }\n'
              f'  ops: {{ password: "{harness.pbkdf2("ops-secret")}", roles: [ops] }}\n'
              'roles:\n  reader:\n    - allow: [read]\n      on: ["default.*"]\n'
              '  ops:\n    - allow: [admin]\n      on: ["*"]\n')
    port, admin_port = harness.free_port(), harness.free_port()
    server = harness.start_guard(
        _guard_binary(), port, milvus.address, log_dir, name="milvus-guard-crl",
        config=(f"tls: {{cert: {cert}, key: {key}, client_ca: {ca}, client_crl: {crl}}}\n"
                f'admin: {{listen: "127.0.0.1:{admin_port}"}}\n'),
        policies={"svc.yaml": policy}, ready=lambda address: harness.tcp_accepts("127.0.0.1", port),
    )
    request = b"\x12\x07default\x1a\x05books"  # HasCollectionRequest(db_name, collection_name)

    def channel(client_key: Path, client_cert: Path) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes(),
                                                   private_key=client_key.read_bytes(),
                                                   certificate_chain=client_cert.read_bytes())
        return grpc.secure_channel(f"localhost:{port}", credentials)

    def has(on: grpc.Channel):
        return on.unary_unary(harness.MILVUS_SERVICE + "HasCollection", request_serializer=None,
                              response_deserializer=None)(request, timeout=10)
    try:
        # /metrics says when the CRL in force stops counting (an alert before it saves every client of the CA).
        import base64
        import time
        import urllib.request
        metrics = urllib.request.Request(f"http://127.0.0.1:{admin_port}/metrics")
        metrics.add_header("Authorization", "Basic " + base64.b64encode(b"ops:ops-secret").decode())
        text = urllib.request.urlopen(metrics, timeout=10).read().decode()
        line = next(l for l in text.splitlines() if l.startswith("milvus_guard_tls_client_crl_next_update_seconds "))
        assert abs(int(line.split()[1]) - (time.time() + 2 * 86400)) < 600, line
        with channel(svc_key, svc_cert) as svc, channel(other_key, other_cert) as other:
            assert has(svc) is not None and has(other) is not None
            run("ca", "-revoke", str(svc_cert), *ca_args)
            run("ca", "-gencrl", "-out", str(crl), *ca_args)
            os.kill(server.proc.pid, signal.SIGHUP)
            harness.wait_until(lambda: server.log_path.read_text(errors="replace").count("policy reloaded") >= 1, 10,
                               "the reload")
            # The live connection of the revoked certificate: refused at its next call.
            with pytest.raises(grpc.RpcError) as revoked:
                has(svc)
            assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED, revoked.value
            assert "no longer accepted (certificate revoked)" in revoked.value.details()
            assert has(other) is not None  # another certificate of the same CA goes on
            # A reload that changes no TLS file leaves the TLS contexts (and open connections) alone.
            os.kill(server.proc.pid, signal.SIGHUP)
            harness.wait_until(lambda: server.log_path.read_text(errors="replace").count("policy reloaded") >= 2, 10,
                               "the second reload")
            assert server.log_path.read_text(errors="replace").count("TLS files changed and reloaded") == 1
            assert has(other) is not None
        # A new connection with it fails its handshake.
        with channel(svc_key, svc_cert) as again:
            with pytest.raises(grpc.RpcError) as refused:
                has(again)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
        # An expired CRL would refuse every client of the CA: `reload` refuses to ask, and a SIGHUP is rejected.
        run("ca", "-gencrl", "-out", str(crl), "-crl_lastupdate", "20250101000000Z", "-crl_nextupdate",
            "20250102000000Z", *ca_args)
        asked = subprocess.run([_guard_binary(), "reload"], cwd=server.work_dir, capture_output=True, text=True,
                               timeout=60)
        assert asked.returncode == 2 and "has expired" in asked.stderr, asked.stderr
        os.kill(server.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: "reload rejected: the TLS files do not load" in server.log_path.read_text(
            errors="replace"), 10, "the rejected reload")
        with channel(other_key, other_cert) as other:
            assert has(other) is not None  # the CRL loaded before stays in force
        listed = subprocess.run([_guard_binary(), "audit", "--format", "json", "--limit", "100"], cwd=server.work_dir,
                                capture_output=True, text=True, timeout=60)
        entries = [json.loads(line) for line in listed.stdout.splitlines()]
        policies = [e for e in entries if e["action"] == "policy"]
        assert [e["decision"] for e in policies] == ["loaded", "loaded", "loaded", "rejected"], policies
        loads = [e["targets"] for e in policies[:2]]
        assert loads[0]["tls.client_crl"] != loads[1]["tls.client_crl"], loads
        assert "has expired" in policies[3]["message"], policies[3]
        assert any(e["rpc"] == "TLS" and "certificate revoked" in (e["message"] or "") for e in entries), entries
    finally:
        server.stop()
