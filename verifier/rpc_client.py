"""A small JSON-RPC 2.0 client for a node's ``rpc`` address (httpx, synchronous)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from ledger.errors import LedgerError


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
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
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
            response = self._http.post(self.url, json=request)
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{self.url}: {exc}") from exc
        if response.status_code != 200:
            raise RpcUnavailable(f"{self.url}: HTTP {response.status_code}")
        body = response.json()
        if "error" in body:
            err = body["error"]
            raise RpcError(str(err.get("message")), rpc_code=int(err.get("code", 0)), data=err.get("data"))
        return body["result"]
