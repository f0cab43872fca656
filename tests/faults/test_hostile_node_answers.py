"""The verifier's RPC client against a node that answers with garbage: an endless body, a
deeply nested one, something that is not JSON-RPC. Each is refused as ``RpcUnavailable``
with a line naming the node and the method; the client never holds more than its limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from verifier.rpc_client import RpcClient, RpcUnavailable

LIMIT = 1 << 20


class _Hostile(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        kind = self.path.strip("/")
        self.send_response(200)
        self.send_header("content-type", "application/json")
        if kind == "endless":  # no length: the client must stop reading by itself
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            block = b" " * 65536
            try:
                for _ in range(4096):  # up to 256 MiB, far past the limit
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            except (BrokenPipeError, ConnectionResetError):
                return
            self.wfile.write(b"0\r\n\r\n")
            return
        body = {
            "declared": b"{}" + b" " * (LIMIT + 1),
            "deep": b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "shape": b'["not", "a", "response"]',
            "garbage": b"\xff\xfe not json",
            "good": b'{"jsonrpc":"2.0","id":1,"result":{"height":7}}',
        }[kind]
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def node_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("endless", "exceeds"),
        ("declared", "exceeds"),
        ("deep", "nested"),
        ("shape", "not a JSON-RPC response"),
        ("garbage", "not valid JSON"),
    ],
)
def test_a_hostile_answer_is_refused(node_url: str, kind: str, says: str) -> None:
    with RpcClient(f"{node_url}/{kind}", max_answer_bytes=LIMIT) as rpc, pytest.raises(RpcUnavailable) as refused:
        rpc.call("ballot_status")
    assert says in str(refused.value)
    assert "ballot_status" in str(refused.value)


def test_an_honest_answer_still_reads(node_url: str) -> None:
    """Fails if the bounds refuse what they should pass."""
    with RpcClient(f"{node_url}/good", max_answer_bytes=LIMIT) as rpc:
        assert rpc.call("ballot_status") == {"height": 7}
