"""Request bodies as JSON, through ``ledger.jsonbound`` (size, then depth, then parse).

One parser for both ways into the gateway: the edge's fast path calls
:func:`parse_json_body`, and FastAPI's routes parse through :class:`BoundedJsonRoute`,
whose requests answer ``json()`` with the same function. A refusal is a :class:`Problem`
with its own code, whichever way the body came in.
"""

# No "from __future__ import annotations": FastAPI inspects the route handler's signature.
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from ledger import jsonbound
from ledger.errors import LedgerError, Oversized, TooDeep
from node.gateway.problems import Problem

# Every body the API takes is one flat object ({"ballot": HEX}); some room for clients
# that wrap it, none for the nesting that costs a parser its stack.
MAX_DEPTH = 8


def parse_json_body(body: bytes, max_bytes: int) -> Any:
    """The body's JSON value, or a Problem: ``too_deep`` (400), ``payload_too_large``
    (413), or ``validation_error`` (422, as for any body the schema refuses)."""
    try:
        return jsonbound.loads(body, max_bytes=max_bytes, max_depth=MAX_DEPTH, what="request body")
    except TooDeep as exc:
        raise Problem("too_deep", exc.message) from None
    except Oversized as exc:
        raise Problem("payload_too_large", exc.message) from None
    except LedgerError as exc:
        raise Problem("validation_error", exc.message) from None


class BoundedJsonRequest(Request):
    max_bytes = 1 << 20  # the edge has already held the body to the configured limit

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json_body(await self.body(), self.max_bytes)
        return self._json


class BoundedJsonRoute(APIRoute):
    """A FastAPI route whose JSON body goes through :func:`parse_json_body`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            try:
                return await handler(BoundedJsonRequest(request.scope, request.receive))
            except HTTPException as exc:  # FastAPI wraps a failed parse; answer with its own problem
                if isinstance(exc.__cause__, Problem):
                    raise exc.__cause__ from None
                raise

        return bounded
