"""``POST /v1/elections/{election_id}/ballots``: the route, the one submit operation, and
the edge's fast path into it.

At load most of a request's cost is FastAPI's routing and dependency machinery, so the
edge (:mod:`node.gateway.edge`) sends well-formed submissions to :func:`fast_submit`,
which does what the route does with the same pieces (the same auth, the same JSON
parser, the same model, the same :func:`submit`) and hands anything else to FastAPI.
"""

# No "from __future__ import annotations": FastAPI inspects the route's signature.
import re
from collections.abc import MutableMapping
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from node.gateway import admission
from node.gateway.deps import AUTHORIZED, ElectionId, FrontEnd, State, new_router
from node.gateway.http_problems import problem_response, responses
from node.gateway.jsonbody import parse_json_body
from node.gateway.models import Accepted, SubmitBallot
from node.gateway.problems import Problem
from node.gateway.state import GatewayState

SUBMIT_ROUTE = "/v1/elections/{election_id}/ballots"
SUBMIT_PATH = re.compile(
    "^" + re.escape(SUBMIT_ROUTE).replace(re.escape("{election_id}"), f"({admission.ELECTION_ID_PATTERN[1:-1]})") + "$"
)
# Which problem codes the route can answer: its OpenAPI responses are built from these.
SUBMIT_CODES = ["bad_encoding", "too_deep", "unauthorized", "unknown_election", "duplicate_credential",
                "election_not_open", "oversized", "payload_too_large", "validation_error", "bad_signature",
                "not_in_credential_set", "wrong_chain", "election_mismatch", "rate_limited", "unavailable"]

router = new_router()


async def submit(state: GatewayState, election_id: str, body: SubmitBallot) -> JSONResponse:
    """Check the ballot by the chain's rules, make it durable in the outbox, answer 202
    with its tracking code (the same answer for the same ballot, however often sent)."""
    raw = admission.decode_hex_ballot(body.ballot)
    try:
        await state.directory.lookup(election_id, state.upstream)  # an election defined since the last look
        checked = await state.submissions().check(election_id, raw, state.directory.elections())
        new = await state.open_outbox().admit(checked)  # in the order the checks answered
    except Problem as problem:
        state.metrics.refused.labels(problem.code).inc()
        raise
    (state.metrics.accepted if new else state.metrics.repeated).inc()
    code = checked.tracking_code.hex()
    return JSONResponse({"tracking_code": code, "receipt_url": f"/v1/receipts/{code}"}, status_code=202)


@router.post(
    SUBMIT_ROUTE,
    status_code=202,
    response_model=Accepted,
    responses=responses(SUBMIT_CODES),
    summary="Submit a signed ballot envelope",
)
async def submit_ballot(election_id: ElectionId, body: SubmitBallot, client: FrontEnd, state: State) -> Response:
    return await submit(state, election_id, body)


def submit_target(scope: MutableMapping[str, Any]) -> str | None:
    """The election a request submits to, if it is a submission."""
    match = SUBMIT_PATH.match(scope["path"]) if scope["method"] == "POST" else None
    return None if match is None else match.group(1)


async def fast_submit(
    state: GatewayState, scope: MutableMapping[str, Any], election_id: str, body: bytes
) -> Response | None:
    """The route's answer, or None to hand the request to FastAPI (already authorized)
    when it needs FastAPI's wording: another content type, or a body the model refuses."""
    headers = dict(scope["headers"])
    try:
        authorization = headers.get(b"authorization")
        scope[AUTHORIZED] = state.authorize(None if authorization is None else authorization.decode("latin-1"))
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return None
        parsed = SubmitBallot.model_validate(parse_json_body(body, state.config.max_request_bytes))
        return await submit(state, election_id, parsed)
    except ValidationError:
        return None
    except Problem as problem:
        return problem_response(problem, scope["path"])
