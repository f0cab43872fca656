"""A small JSON-RPC 2.0 client for a node's ``rpc`` address (httpx, synchronous).

The node at the other end may be hostile (an observer points this at whatever node they
like): an answer is read only up to ``max_answer_bytes``, then bounded in depth before it is
parsed, and must have JSON-RPC's shape."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from ledger import jsonbound
from ledger.errors import LedgerError

# The largest honest answer is a page of blocks (at most 512 KiB raw, hex-encoded, ~1 MiB)
# or a results object; 64 MiB leaves room for any node's configured page size.
MAX_ANSWER_BYTES = 64 << 20


class RpcError(LedgerError):
    """The node answered with a JSON-RPC error; ``rpc_code`` and ``data`` as sent."""

    code = "rpc_error"

    def __init__(self, message: str, *, rpc_code: int, data: Any = None) -> None:
        ledger_code = data.get("code") if isinstance(data, dict) else None
        super().__init__(message, where=data.get("where") if isinstance(data, dict) else None)
        self.rpc_code = rpc_code
        self.data = data
        if isinstance(ledger_code, str):
            self.code = ledger_code


class RpcUnavailable(LedgerError):
    code = "rpc_unavailable"


class RpcClient:
    def __init__(self, url: str, *, timeout: float = 30.0, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.url = url
        self.max_answer_bytes = max_answer_bytes
        self._http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, *params: Any) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            with self._http.stream("POST", self.url, json=request) as response:
                if response.status_code != 200:
                    raise RpcUnavailable(f"{self.url}: HTTP {response.status_code}")
                raw = self._read_bounded(response, method)
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{self.url}: {exc}") from exc
        try:
            body = jsonbound.loads(raw, max_bytes=self.max_answer_bytes, what=f"{self.url}: {method} answer")
        except LedgerError as exc:  # too deep or not JSON: this node cannot be read
            raise RpcUnavailable(str(exc)) from None
        if not isinstance(body, dict) or ("result" not in body and not isinstance(body.get("error"), dict)):
            raise RpcUnavailable(f"{self.url}: {method}: the answer is not a JSON-RPC response")
        if "error" in body:
            err = body["error"]
            code = err.get("code", 0)
            raise RpcError(str(err.get("message")), rpc_code=code if isinstance(code, int) else 0, data=err.get("data"))
        return body["result"]

    def _read_bounded(self, response: httpx.Response, method: str) -> bytes:
        """The body, refused as soon as it passes the limit (never held whole beyond it)."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_answer_bytes:
            raise RpcUnavailable(f"{self.url}: {method}: answer of {declared} bytes exceeds {self.max_answer_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise RpcUnavailable(f"{self.url}: {method}: answer exceeds {self.max_answer_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
