"""HTTP limits on a real validator's RPC and a real gateway, probed with raw sockets on
loopback: huge and numerous headers, slow headers, slow bodies, too many connections,
while a legitimate client keeps being served.

Fails when either server runs uvicorn's plain httptools protocol (no header or body
deadline, no header size bound): checked by hand once with ``uvicorn_options`` returning
``{"http": "httptools"}`` (the 100 MB header was read whole and half-sent requests stayed
open)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import psutil
import pytest

from tests.faults.conftest import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, LIMITS, Served

pytestmark = pytest.mark.integration

SLACK_S = 2.0  # scheduling on a shared 2-core machine
GOOD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"  # the gateway answers 200, the node 404


@dataclass
class Target:
    name: str
    host: str
    port: int
    pid: int
    post_path: str
    headers: dict[str, str] = field(default_factory=dict)
    legit: Callable[[], None] = lambda: None


def _targets(served: Served) -> list[Target]:
    def rpc_ok() -> None:
        answer = httpx.post(served.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "ballot_status"}, timeout=3)
        assert answer.json()["result"]["height"] >= 0

    def gateway_ok() -> None:
        assert httpx.get(f"{served.gateway_url}/healthz", timeout=3).status_code == 200

    node_port = int(served.rpc_url.rsplit(":", 1)[1])
    assert served.gateway.proc is not None
    return [
        Target("node", "127.0.0.1", node_port, served.net.procs[0].pid, "/", legit=rpc_ok),
        Target("gateway", "127.0.0.1", served.gateway.port, served.gateway.proc.pid,
               "/v1/elections/board-2026/ballots", headers=served.gateway.auth, legit=gateway_ok),
    ]


@pytest.fixture(params=["node", "gateway"])
def target(request: pytest.FixtureRequest, served: Served) -> Iterator[Target]:
    chosen = next(t for t in _targets(served) if t.name == request.param)
    yield chosen
    chosen.legit()
    served.assert_clean_logs()


def _connect(t: Target) -> socket.socket:
    return socket.create_connection((t.host, t.port), timeout=5)


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _read_response(sock: socket.socket, timeout: float = 5) -> bytes:
    """One whole response (head and Content-Length body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (after any answer it sent)."""
    sock.settimeout(0.05)
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@contextmanager
def _legit_client(t: Target) -> Iterator[list[float]]:
    """A client making one request every 50 ms for as long as the block runs; yields the
    latencies (a failed request raises in the test)."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                t.legit()
            except BaseException as exc:  # reported in the test's thread
                errors.append(exc)
                return
            latencies.append(time.perf_counter() - started)
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert latencies, "the legitimate client made no request"


def test_huge_header_refused_early(target: Target) -> None:
    """100 MB of one header: refused after the limit, memory does not follow."""
    rss_before = psutil.Process(target.pid).memory_info().rss
    sock = _connect(target)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    chunk = b"a" * 65536
    sent = 0
    try:
        while sent < 100 * 1024 * 1024:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    answer = _read_all(sock, 5)
    sock.close()
    grown = psutil.Process(target.pid).memory_info().rss - rss_before
    assert sent < 16 * 1024 * 1024, f"the server read {sent} bytes of one header"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert grown < 20 * 1024 * 1024, f"server memory grew by {grown} bytes"


@pytest.mark.parametrize("head", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
])
@pytest.mark.parametrize("first", [b"", GOOD], ids=["first-request", "after-a-kept-alive-one"])
def test_large_or_many_headers_get_431(target: Target, head: bytes, first: bytes) -> None:
    with _connect(target) as sock:
        sock.sendall(first)
        if first:
            answer = _read_response(sock)
            assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 404")), answer
        sock.sendall(head)
        answer = _read_all(sock, 5)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_early_answer_is_not_followed_by_a_408(served: Served) -> None:
    """A submission refused before its body is read (declared over the gateway's body
    limit: 413) and then never finished: one answer, then the connection is closed at
    the body deadline. Fails when the deadline answers every request it cuts off
    (checked by hand once: a 408 followed the 413)."""
    t = next(t for t in _targets(served) if t.name == "gateway")
    with _connect(t) as sock:
        sock.sendall(b"POST /v1/elections/board-2026/ballots HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n"
                     b"Content-Type: application/json\r\n\r\n{")
        started = time.monotonic()
        answer = _read_all(sock, BODY_TIMEOUT_S + SLACK_S)
    assert answer.startswith(b"HTTP/1.1 413") and answer.count(b"HTTP/1.1 ") == 1, answer
    assert time.monotonic() - started < BODY_TIMEOUT_S + SLACK_S


def test_limits_leave_ordinary_requests_alone(target: Target) -> None:
    """60 headers of 200 bytes (under both limits), keep-alive, pipelined: all served."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(60))
    with _connect(target) as sock:
        sock.sendall((head + b"\r\n") * 3 + head + b"Connection: close\r\n\r\n")
        answer = _read_all(sock, 5)
    assert answer.count(b"HTTP/1.1 ") == 4 and b" 431 " not in answer and b" 408 " not in answer, answer[:300]


def test_half_sent_requests_are_closed_after_the_header_timeout(target: Target) -> None:
    """500 connections with half a request each (and one that sends nothing, and one that
    drips a byte at a time): all closed once the header deadline passes, while a
    legitimate client is served throughout."""
    with _legit_client(target) as latencies:
        opened = time.monotonic()
        socks = []
        for i in range(500):
            sock = _connect(target)
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nX-Slow: %d\r\n" % (target.post_path.encode(), i))
            socks.append(sock)
        silent = _connect(target)
        drip = _connect(target)
        drip.sendall(b"GET /healthz HTTP/1.1\r\n")
        while time.monotonic() - opened < HEADER_TIMEOUT_S - 0.5:
            drip.sendall(b"X")  # busy but never done: the deadline is for the whole head
            time.sleep(0.2)
        assert not _closed(silent)
        deadline = opened + HEADER_TIMEOUT_S + SLACK_S
        everyone = [*socks, silent, drip]
        while time.monotonic() < deadline and not all(_closed(s) for s in everyone):
            time.sleep(0.2)
        still_open = sum(not _closed(s) for s in everyone)
        for sock in everyone:
            sock.close()
    assert still_open == 0, f"{still_open} of {len(everyone)} connections still open"
    assert max(latencies) < 2.0, f"the legitimate client waited {max(latencies):.2f} s"


def test_slow_body_gets_408_within_the_limit(target: Target) -> None:
    """Content-Length 1,000 with 10 bytes sent: 408 and closed within the body deadline."""
    head = (f"POST {target.post_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1000\r\n" + "".join(f"{k}: {v}\r\n" for k, v in target.headers.items()) + "\r\n")
    with _legit_client(target):
        socks = []
        for _ in range(20):
            sock = _connect(target)
            sock.sendall(head.encode() + b'{"ballot":')
            socks.append(sock)
        started = time.monotonic()
        answers = [_read_all(sock, BODY_TIMEOUT_S + SLACK_S) for sock in socks]
        waited = time.monotonic() - started
        for sock in socks:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), [a[:100] for a in answers]
    assert waited < BODY_TIMEOUT_S + SLACK_S


def test_connections_over_the_limit_get_503(served: Served) -> None:
    """Beyond max_connections a new connection is answered 503 and closed; the server
    serves again once the flood's connections are gone."""
    t = next(t for t in _targets(served) if t.name == "node")
    limit = int(LIMITS["max_connections"])
    socks = [_connect(t) for _ in range(limit)]
    extra = [_connect(t) for _ in range(5)]
    answers = [_read_all(s, 3) for s in extra]
    for sock in socks + extra:
        sock.close()
    assert all(a.startswith(b"HTTP/1.1 503") for a in answers), [a[:100] for a in answers]
    time.sleep(0.5)
    t.legit()
    served.assert_finalizing()
    served.assert_clean_logs()
