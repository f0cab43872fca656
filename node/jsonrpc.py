"""JSON-RPC 2.0: parsing, dispatch and error mapping, with no transport of its own.

The node's HTTP server hands request bodies to :func:`handle_body`; methods are plain
async callables taking positional params. Ledger refusals become error -32000 with the
stable ledger code in ``data.code``; nothing a client sends can crash the server.

A request's cost is bounded before anything runs: its body's bytes and JSON values are
counted before the parse (and charged to the client's parse bucket), and a batch's calls
are weighed (``node.rpc_limits``) against the table's budget; a refused request or call
gets -32005 ("limit exceeded").
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from ledger import jsonbound
from ledger.errors import LedgerError, Oversized, TooDeep
from node.rpc_limits import (
    LIMIT_EXCEEDED,
    ClientBuckets,
    LimitExceeded,
    OverBudget,
    batch_cost,
    json_values,
    parse_units,
)

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
LEDGER_REFUSAL = -32000
MAX_BATCH = 1000
MAX_BODY = 32 * 1024 * 1024
# A batch of requests whose params nest objects in arrays (eth_getLogs topics) is 6 deep.
MAX_DEPTH = 32

Method = Callable[..., Awaitable[Any]]

# The address of the client whose request is being answered (set by the HTTP server).
current_client: ContextVar[str] = ContextVar("rpc_client", default="")


# Error names for metrics, by JSON-RPC error code.
ERROR_NAMES = {
    PARSE_ERROR: "parse_error", INVALID_REQUEST: "invalid_request", METHOD_NOT_FOUND: "method_not_found",
    INVALID_PARAMS: "invalid_params", INTERNAL_ERROR: "internal_error", LEDGER_REFUSAL: "ledger_refusal",
    LIMIT_EXCEEDED: "limit_exceeded",
}
NO_METHOD = "(none)"  # the method label of a request refused before it named a known method
Observer = Callable[[str, float, "str | None"], None]


class MethodTable(dict[str, Method]):
    """Methods by name, with the budget one request to them may spend and, if given,
    each client's bucket of parse units (``node.rpc_limits.parse_units``) and a function
    told of each answered call: ``observe(method, seconds, error name or None)``."""

    def __init__(
        self, methods: Mapping[str, Method] | None = None, *, batch_budget: int = 1_000,
        max_body_bytes: int = 4 << 20, max_json_values: int = 20_000, parse_buckets: ClientBuckets | None = None,
    ) -> None:
        super().__init__(methods or {})
        self.batch_budget = batch_budget
        self.max_body_bytes = max_body_bytes
        self.max_json_values = max_json_values
        self.parse_buckets = parse_buckets
        self.observe: Observer | None = None


_DEFAULT_LIMITS = MethodTable()  # the budgets a plain mapping of methods is held to


class InvalidParams(LedgerError):
    code = "invalid_params"


def _error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def _limit_error(id_: Any, exc: LimitExceeded) -> dict[str, Any]:
    data: dict[str, Any] = {"code": exc.code}
    if exc.retry_after_ms is not None:
        data["retry_after_ms"] = exc.retry_after_ms
    return _error(id_, LIMIT_EXCEEDED, exc.message, data)


async def handle_body(methods: Mapping[str, Method], body: bytes) -> Any:
    """Answer a request body: a response object, a list (batch), or None (notifications)."""
    table = methods if isinstance(methods, MethodTable) else _DEFAULT_LIMITS
    started = time.perf_counter()
    refusal, request = _read_body(table, body)
    if refusal is not None:
        if table.observe is not None:  # refused whole, before any call ran
            table.observe(NO_METHOD, time.perf_counter() - started, _error_name(refusal))
        return refusal
    if isinstance(request, list):
        answers = [await handle_one(methods, r) for r in request]
        kept = [a for a in answers if a is not None]
        return kept or None
    return await handle_one(methods, request)


def _read_body(table: MethodTable, body: bytes) -> tuple[dict[str, Any] | None, Any]:
    """(the error answering the whole body, or None and the parsed request)."""
    if len(body) > table.max_body_bytes:
        return _limit_error(None, OverBudget(f"a request body may hold at most {table.max_body_bytes} bytes")), None
    if json_values(body) > table.max_json_values:
        return _limit_error(None, OverBudget(f"a request may hold at most {table.max_json_values} JSON values")), None
    if table.parse_buckets is not None:
        try:
            table.parse_buckets.take(current_client.get(), parse_units(body), time.monotonic(), "parse units")
        except LimitExceeded as exc:
            return _limit_error(None, exc), None
    try:
        request = jsonbound.loads(body, max_bytes=MAX_BODY, max_depth=MAX_DEPTH, what="request")
    except (Oversized, TooDeep) as exc:
        return _error(None, INVALID_REQUEST, exc.message, {"code": exc.code}), None
    except LedgerError as exc:
        return _error(None, PARSE_ERROR, f"parse error: {exc.message}", {"code": exc.code}), None
    if isinstance(request, list):
        if not request:
            return _error(None, INVALID_REQUEST, "empty batch"), None
        if len(request) > MAX_BATCH:
            return _error(None, INVALID_REQUEST, f"batch of {len(request)} exceeds {MAX_BATCH}"), None
        cost = batch_cost(request)
        if cost > table.batch_budget:
            return _limit_error(None, OverBudget(
                f"batch costs {cost} units, the budget of one request is {table.batch_budget}: split it")), None
    return None, request


async def handle_one(methods: Mapping[str, Method], request: Any) -> dict[str, Any] | None:
    observe = methods.observe if isinstance(methods, MethodTable) else None
    if observe is None:
        return await _answer_one(methods, request)
    started = time.perf_counter()
    answer = await _answer_one(methods, request)
    name = request.get("method") if isinstance(request, dict) else None
    if isinstance(name, str) and name in methods:
        observe(name, time.perf_counter() - started, None if answer is None else _error_name(answer))
    elif answer is not None:  # a malformed call, or an unknown method (never a label of the client's choosing)
        observe(NO_METHOD, time.perf_counter() - started, _error_name(answer))
    return answer


def _error_name(answer: dict[str, Any]) -> str | None:
    error = answer.get("error")
    if error is None:
        return None
    return ERROR_NAMES.get(error["code"], "other")


async def _answer_one(methods: Mapping[str, Method], request: Any) -> dict[str, Any] | None:
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or "method" not in request:
        return _error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 request")
    id_ = request.get("id")
    notification = "id" not in request
    if id_ is not None and not isinstance(id_, (str, int)):
        return _error(None, INVALID_REQUEST, "id must be a string, a number or null")
    method = request["method"]
    params = request.get("params", [])
    if not isinstance(method, str):
        return _error(id_, INVALID_REQUEST, "method must be a string")
    handler = methods.get(method)
    if handler is None:
        return None if notification else _error(id_, METHOD_NOT_FOUND, f"method {method!r} not found")
    if isinstance(params, dict):
        args: list[Any] = []
        kwargs: dict[str, Any] = params
    elif isinstance(params, list):
        args, kwargs = params, {}
    else:
        return _error(id_, INVALID_PARAMS, "params must be an array or an object")
    try:
        _signature(handler).bind(*args, **kwargs)
    except TypeError as exc:  # wrong number or names of params: the client's error
        return _error(id_, INVALID_PARAMS, f"invalid params for {method}: {exc}")
    try:
        result = await handler(*args, **kwargs)
    except InvalidParams as exc:
        return _error(id_, INVALID_PARAMS, exc.message, {"code": exc.code})
    except LimitExceeded as exc:
        return None if notification else _limit_error(id_, exc)
    except LedgerError as exc:
        return _error(id_, LEDGER_REFUSAL, exc.message, {"code": exc.code, "where": exc.where})
    except Exception:  # the last line of defence: log it, answer, stay up
        log.exception("internal error in %s", method)
        return _error(id_, INTERNAL_ERROR, "internal error")
    return None if notification else {"jsonrpc": "2.0", "id": id_, "result": result}


@functools.cache
def _signature(handler: Method) -> inspect.Signature:
    return inspect.signature(handler)


# --- param readers shared by the node's methods ----------------------------------------
def hex_param(value: Any, what: str, *, size: int | None = None, max_size: int = 1 << 20) -> bytes:
    if not isinstance(value, str):
        raise InvalidParams(f"{what} must be a hex string")
    text = value[2:] if value.startswith("0x") else value
    if len(text) > 2 * max_size:
        raise InvalidParams(f"{what} is larger than {max_size} bytes")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise InvalidParams(f"{what} is not hex") from exc
    if size is not None and len(raw) != size:
        raise InvalidParams(f"{what} must be {size} bytes")
    return raw


def int_param(value: Any, what: str, *, minimum: int = 0, maximum: int = 2**63) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidParams(f"{what} must be an integer in [{minimum}, {maximum}]")
    return value
