"""A raw HTTP/2 client and a silent HTTP/2 upstream, built on the `h2` package.

The client lets a test send what grpcio never would (application/json, half a request, a
grpc-timeout with no client-side deadline). The upstream records the requests it receives and never
answers them, so a call through the guard stays pending until the guard gives up on it.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import h2.config
import h2.connection
import h2.events


def grpc_frame(message: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def grpc_headers(authority: str, method: str, extra: Optional[list[tuple[str, str]]] = None) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", method),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] + (extra or [])


@dataclass
class H2Response:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)
    reset_code: Optional[int] = None
    goaway: bool = False
    ended: bool = False

    @property
    def status(self) -> Optional[int]:
        value = self.headers.get(":status")
        return int(value) if value is not None else None

    def grpc(self, key: str) -> Optional[str]:
        """A gRPC status field from the trailers, or from the headers of a trailers-only response."""
        return self.trailers.get(key, self.headers.get(key))


def _text(pairs) -> dict[str, str]:
    out = {}
    for name, value in pairs:
        name = name.decode() if isinstance(name, bytes) else name
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        out[name] = value
    return out


class H2Client:
    """One prior-knowledge (h2c) connection."""

    def __init__(self, host: str, port: int, timeout: float = 10.0, raw_headers: bool = False):
        """`raw_headers`: send header names and values as given (upper-case names too), unchecked by h2."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.authority = f"{host}:{port}"
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        if raw_headers:
            config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                               normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_request(self, headers: list[tuple[str, str]], body: bytes = b"", end_stream: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=not body and end_stream)
        self.flush()
        offset = 0
        while offset < len(body):
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                self._read_some()
                continue
            chunk = body[offset : offset + window]
            offset += len(chunk)
            self.conn.send_data(stream_id, chunk, end_stream=end_stream and offset == len(body))
            self.flush()
        return stream_id

    def _read_some(self) -> list:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        events = self.conn.receive_data(data)
        self.flush()
        return events

    def response(self, stream_id: int, timeout: float = 10.0) -> H2Response:
        """Reads until the stream ends, is reset, or the connection goes away; bounded by `timeout`."""
        result = H2Response()
        deadline = time.monotonic() + timeout
        while not (result.ended or result.reset_code is not None or result.goaway):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete response on stream {stream_id} within {timeout}s")
            self.sock.settimeout(remaining)
            try:
                events = self._read_some()
            except ConnectionError:
                result.goaway = True
                break
            for event in events:
                if getattr(event, "stream_id", None) not in (stream_id, None):
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    result.headers = _text(event.headers)
                elif isinstance(event, h2.events.TrailersReceived):
                    result.trailers = _text(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    result.data += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    self.flush()
                elif isinstance(event, h2.events.StreamEnded):
                    result.ended = True
                elif isinstance(event, h2.events.StreamReset):
                    result.reset_code = int(event.error_code)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    result.goaway = True
        return result

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def h2_request(
    host: str, port: int, headers: list[tuple[str, str]], body: bytes = b"", timeout: float = 10.0,
    raw_headers: bool = False,
) -> H2Response:
    client = H2Client(host, port, timeout=timeout, raw_headers=raw_headers)
    try:
        stream_id = client.send_request(headers, body)
        return client.response(stream_id, timeout=timeout)
    finally:
        client.close()


def http1_request(host: str, port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Sends raw bytes and reads until the peer closes or `timeout` passes (then returns what came)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            # A complete head with Content-Length: stop once the body is in.
            data = b"".join(chunks)
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and len(body) >= int(value.strip() or 0):
                        return data
        return b"".join(chunks)


class SilentUpstream:
    """An HTTP/2 server on loopback that records every request and answers none."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.paths: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept_loop, name="silent-upstream", daemon=True)
        accept.start()
        self._threads.append(accept)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        with self._lock:
            return list(self.paths)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            worker = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.initiate_connection()
        try:
            sock.sendall(conn.data_to_send())
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        with self._lock:
                            self.paths.append(_text(event.headers).get(":path", ""))
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
        except Exception:
            return
        finally:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=2)
