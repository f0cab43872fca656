"""Deep and malformed JSON bodies against a real validator and a real gateway: a clean
refusal, never a crash. The validator imports py-evm, which raises Python's recursion
limit to 100,000; the stdlib parser on 100,000 nested ``[`` then overflows the C stack
(SIGSEGV) unless the body is measured first (``ledger.jsonbound``).

Fails when ``node.jsonrpc.handle_body`` parses with ``json.loads`` directly: the
validator dies with SIGSEGV (checked by hand once)."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.conftest import Served

pytestmark = pytest.mark.integration

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
UNCLOSED = b"[" * 200_000
DEEP_PARAMS = b'{"jsonrpc":"2.0","id":1,"method":"ballot_status","params":' + b"[" * 5000 + b"]" * 5000 + b"}"
DEEP_IN_STRING = b'{"jsonrpc":"2.0","id":7,"method":"ballot_status","params":[],"x":"' + b"[" * 100_000 + b'"}'


@pytest.mark.parametrize(("body", "code"), [
    (DEEP, -32600), (DEEP_OBJECT, -32600), (UNCLOSED, -32600), (DEEP_PARAMS, -32600),
    (b"[" * 33 + b"]" * 33, -32600), (b"\xff\xfe[", -32700), (b"[1,2", -32700),
])
def test_node_refuses_deep_json_and_keeps_finalizing(served: Served, body: bytes, code: int) -> None:
    answer = httpx.post(served.rpc_url, content=body, headers={"content-type": "application/json"}, timeout=10)
    assert answer.status_code == 200
    error = answer.json()["error"]
    # a body of very many values may meet the RPC's cost budget (-32005 over_budget) before
    # its depth is measured: either way a clean refusal
    assert error["code"] == code or (code == -32600 and error["data"]["code"] == "over_budget"), error
    served.assert_finalizing()
    served.assert_clean_logs()


def test_node_parses_brackets_inside_strings(served: Served) -> None:
    """Brackets inside a string are not nesting: the request is served."""
    answer = httpx.post(served.rpc_url, content=DEEP_IN_STRING, timeout=10).json()
    assert answer["id"] == 7 and answer["result"]["height"] >= 0


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, UNCLOSED, b'{"ballot":' + b"[" * 40 + b"]" * 40 + b"}"])
def test_gateway_refuses_deep_json(served: Served, body: bytes) -> None:
    url = f"{served.gateway_url}/v1/elections/board-2026/ballots"
    headers = {**served.gateway.auth, "content-type": "application/json"}
    answer = httpx.post(url, content=body, headers=headers, timeout=10)
    if len(body) > 65536:  # the gateway's body limit comes first
        assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"
    else:
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "too_deep"
    assert answer.headers["content-type"] == "application/problem+json"
    served.assert_clean_logs()


def test_gateway_refuses_deep_json_on_every_route(served: Served) -> None:
    """Deep bodies also reach FastAPI's own route (a request the fast path hands over)."""
    body = b"[" * 1000 + b"]" * 1000
    url = f"{served.gateway_url}/v1/elections/board-2026/ballots"
    for content_type in ("application/json", "application/merge-patch+json"):
        answer = httpx.post(url, content=body, headers={**served.gateway.auth, "content-type": content_type})
        assert answer.status_code == 400 and answer.json()["code"] == "too_deep", answer.text
    served.assert_clean_logs()


def test_gateway_refuses_a_deep_answer_from_a_validator() -> None:
    """A validator (or something posing as one) answering 100,000 nested brackets is an
    unavailable upstream to the gateway, not a RecursionError.

    Fails when ``Upstream.call_one`` parses with ``response.json()`` (checked by hand once:
    RecursionError escaped)."""
    import asyncio

    from node.gateway.upstream import Upstream, UpstreamUnavailable

    async def run() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(DEEP), DEEP))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream((f"http://127.0.0.1:{port}",), timeout_s=5)
        try:
            with pytest.raises(UpstreamUnavailable, match=r"too_deep|nested"):
                await upstream.call_one(upstream.endpoints[0], "ballot_status")
        finally:
            await upstream.close()
            server.close()

    asyncio.run(run())
