"""What routes depend on: the gateway's state, the authenticated front end, the reader
of public data, path parameters, and a router whose JSON bodies go through
``ledger.jsonbound``."""

# No "from __future__ import annotations": FastAPI resolves these Annotated aliases at runtime.
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from node.gateway import admission
from node.gateway.config import ApiKey
from node.gateway.jsonbody import BoundedJsonRoute
from node.gateway.state import GatewayState

AUTHORIZED = "gateway.front_end"  # scope key: the edge's fast path already charged this request

bearer = HTTPBearer(auto_error=False, description="A front end's API key.")


def _state_of(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


async def gateway_state(request: Request) -> GatewayState:
    # async on purpose: FastAPI runs a plain function dependency in a worker thread
    return _state_of(request)


async def front_end(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    """The API key's front end, charged one request against its rate limit."""
    already: ApiKey | None = request.scope.get(AUTHORIZED)
    if already is not None:  # the fast path charged this request and then handed it over
        return already
    return _state_of(request).authorize(request.headers.get("authorization"))


async def reader(request: Request) -> str:
    """Who reads public data (receipts, elections, checkpoints): a front end that sends its
    key is charged to that key as before; anyone else to their client address."""
    state = _state_of(request)
    if request.headers.get("authorization") is not None:
        return state.authorize(request.headers.get("authorization")).name
    address = request.client.host if request.client is not None else ""
    state.authorize_public(address)
    return address


def new_router() -> APIRouter:
    return APIRouter(route_class=BoundedJsonRoute)


State = Annotated[GatewayState, Depends(gateway_state)]
FrontEnd = Annotated[ApiKey, Depends(front_end)]
Reader = Annotated[str, Depends(reader)]
ElectionId = Annotated[str, Path(pattern=admission.ELECTION_ID_PATTERN, max_length=64)]
TrackingCode = Annotated[str, Path(pattern=admission.TRACKING_CODE_PATTERN)]
