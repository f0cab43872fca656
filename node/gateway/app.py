"""The FastAPI layer: routes, auth, limits and problem rendering around the pure core.

Handlers stay thin: parse, call :mod:`node.gateway.admission` / the outbox / the
upstream, render. Every refusal is a :class:`Problem` rendered as
``application/problem+json``; the OpenAPI document is rewritten so that it says so.
"""

# No "from __future__ import annotations": FastAPI resolves the route-local Annotated aliases at runtime.
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.genesis import Genesis
from ledger.rules import ProofCache
from node.gateway import admission
from node.gateway.config import ApiKey, GatewayConfig, hash_key, load_keys
from node.gateway.forwarder import Forwarder
from node.gateway.jsonbody import BoundedJsonRoute, parse_json_body
from node.gateway.metrics import Metrics
from node.gateway.models import (
    Accepted,
    Counts,
    ElectionView,
    Health,
    ProblemDetail,
    Readiness,
    ReceiptStatus,
    SubmitBallot,
    ValidatorHealth,
)
from node.gateway.outbox import Outbox
from node.gateway.problems import PROBLEM_MEDIA_TYPE, Problem, status_of
from node.gateway.ratelimit import TokenBucket, retry_after_header
from node.gateway.upstream import Upstream, UpstreamUnavailable
from verifier.rpc_client import RpcError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

AUTHORIZED = "gateway.front_end"  # scope key: the fast path already charged this request
SUBMIT_ROUTE = "/v1/elections/{election_id}/ballots"
SUBMIT_PATH = re.compile(r"^/v1/elections/([a-z0-9][a-z0-9._-]{0,63})/ballots$")
RESULTS_TTL_S = 1.0
READY_WITHIN_S = 5.0

# Which problem codes each route can answer: the OpenAPI responses are built from these.
SUBMIT_CODES = ["bad_encoding", "too_deep", "unauthorized", "unknown_election", "duplicate_credential",
                "election_not_open", "oversized", "payload_too_large", "validation_error", "bad_signature",
                "not_in_credential_set", "wrong_chain", "election_mismatch", "rate_limited", "unavailable"]
RECEIPT_CODES = ["unauthorized", "not_found", "validation_error", "rate_limited", "unavailable"]
ELECTION_CODES = ["unauthorized", "unknown_election", "validation_error", "rate_limited"]


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _responses(codes: list[str]) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        status = status_of(code)
        entry = out.setdefault(status, {"description": "", "model": ProblemDetail})
        entry["description"] = ", ".join(filter(None, [entry["description"], f"`{code}`"]))
        if code == "rate_limited":
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
        if code == "unauthorized":
            entry["headers"] = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
    return out


@dataclass
class GatewayState:
    config: GatewayConfig
    genesis: Genesis
    keys: dict[bytes, ApiKey]
    metrics: Metrics
    clock_ms: Callable[[], int]
    proofs: ProofCache = field(default_factory=ProofCache)
    buckets: dict[bytes, TokenBucket] = field(default_factory=dict)
    outbox: Outbox | None = None
    upstream: Upstream | None = None
    forwarder: Forwarder | None = None
    results: tuple[float, dict[str, Any]] | None = None

    def open_outbox(self) -> Outbox:
        if self.outbox is None or not self.outbox.is_open:
            raise Problem("unavailable", "the outbox is not open")
        return self.outbox

    def authorize(self, authorization: str | None) -> ApiKey:
        """The front end an ``Authorization`` header names, charged one request."""
        challenge = {"WWW-Authenticate": "Bearer"}
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem("unauthorized", "send Authorization: Bearer <API key>", headers=challenge)
        key_hash = hash_key(token.strip())
        key = self.keys.get(key_hash)
        if key is None:
            raise Problem("unauthorized", "unknown API key", headers=challenge)
        now = time.monotonic()
        bucket = self.buckets.get(key_hash)
        if bucket is None:
            bucket = self.buckets[key_hash] = TokenBucket.full(key.rate_per_s, key.burst, now)
        wait = bucket.take(now)
        if wait > 0:
            self.metrics.rate_limited.labels(key.name).inc()
            raise Problem("rate_limited", f"front end {key.name!r} is over {key.rate_per_s:g} requests/s",
                          headers={"Retry-After": retry_after_header(wait)})
        return key

    async def accept_ballot(self, election_id: str, ballot_hex: str) -> dict[str, str]:
        """The submit operation itself, shared by the FastAPI route and the fast path."""
        raw = admission.decode_hex_ballot(ballot_hex)
        try:
            checked = admission.check_submission(self.genesis, election_id, raw, self.clock_ms(), self.proofs)
            new = await self.open_outbox().admit(checked)
        except Problem as problem:
            self.metrics.refused.labels(problem.code).inc()
            raise
        (self.metrics.accepted if new else self.metrics.repeated).inc()
        code = checked.tracking_code.hex()
        return {"tracking_code": code, "receipt_url": f"/v1/receipts/{code}"}

    def rpc(self) -> Upstream:
        if self.upstream is None:
            raise Problem("unavailable", "no validators configured")
        return self.upstream


class EdgeMiddleware:
    """The outermost ASGI layer: body size limit, request metrics, and a fast path for
    well-formed ballot submissions that skips FastAPI's routing and dependency machinery
    (most of the per-request cost at load). The fast path calls the same functions as the
    FastAPI route; anything it does not recognise goes to FastAPI, already authorized."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state: GatewayState = app.state.gateway
        self.max_body = self.state.config.max_request_bytes
        self.metrics = self.state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        label = "unmatched"

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            try:
                body = await self._read_body(scope, receive)
            except _ClientGone:
                return
            if body is None:
                problem = Problem("payload_too_large", f"request body over {self.max_body} bytes")
                await problem_response(problem, scope["path"])(scope, receive, send_wrapper)
                return
            match = SUBMIT_PATH.match(scope["path"]) if scope["method"] == "POST" else None
            if match is not None:
                label = SUBMIT_ROUTE
                response = await self._fast_submit(scope, match.group(1), body)
                if response is not None:
                    await response(scope, receive, send_wrapper)
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", label)
            self.metrics.requests.labels(label, scope["method"], str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)

    async def _fast_submit(self, scope: Scope, election_id: str, body: bytes) -> Response | None:
        headers = dict(scope["headers"])
        try:
            scope[AUTHORIZED] = self.state.authorize(_latin1(headers.get(b"authorization")))
        except Problem as problem:
            return problem_response(problem, scope["path"])
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return None
        try:
            ballot = SubmitBallot.model_validate(parse_json_body(body, self.max_body)).ballot
        except ValidationError:
            return None  # FastAPI words the validation problem
        except Problem as problem:
            return problem_response(problem, scope["path"])
        try:
            return JSONResponse(await self.state.accept_ballot(election_id, ballot), status_code=202)
        except Problem as problem:
            return problem_response(problem, scope["path"])

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None once it exceeds the limit (whatever Content-Length says)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > self.max_body:
                        return None
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone  # disconnected, or cut off by the body deadline
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


class _ClientGone(Exception):
    """The connection closed before the whole body arrived: nobody to answer."""


def _latin1(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def create_app(config: GatewayConfig, *, clock_ms: Callable[[], int] | None = None) -> FastAPI:
    genesis = Genesis.from_json(config.genesis_file.read_bytes())
    state = GatewayState(
        config=config,
        genesis=genesis,
        keys=load_keys(config.api_keys_file),
        metrics=Metrics(),
        clock_ms=clock_ms or (lambda: int(time.time() * 1000)),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.outbox = Outbox(
            config.outbox_dir, max_items=config.commit_max_items, linger_s=config.commit_linger_ms / 1000
        )
        state.outbox.on_commit = state.metrics.commit_size.observe
        state.outbox.start()
        state.upstream = Upstream(config.validators, timeout_s=config.rpc_timeout_s,
                                  genesis_hash=genesis.hash().hex())
        state.forwarder = Forwarder(
            state.outbox, state.upstream, state.metrics, batch=config.forward_batch,
            interval_s=config.forward_interval_ms / 1000, resubmit_after_s=config.resubmit_after_s,
        )
        state.forwarder.start()
        log.info("gateway for chain %s: %d ballots waiting in the outbox", genesis.chain_id, len(state.outbox.queue))
        try:
            yield
        finally:
            await state.forwarder.stop()
            await state.outbox.close()
            await state.upstream.close()

    app = FastAPI(
        title="ballot-ledger gateway",
        version="1",
        description="Front ends submit signed ballots; voters' receipts and election status.",
        lifespan=lifespan,
    )
    app.router.route_class = BoundedJsonRoute
    app.state.gateway = state
    bearer = HTTPBearer(auto_error=False, description="A front end's API key.")

    # --- errors ------------------------------------------------------------------------
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()[:5]
        )
        return problem_response(Problem("validation_error", details or "invalid request"), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code)
        if code is None:
            code = "validation_error" if 400 <= exc.status_code < 500 else "internal_error"
        headers = dict(exc.headers or {})
        return problem_response(Problem(code, str(exc.detail), status=exc.status_code, headers=headers),
                                request.url.path)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(Problem("internal_error", "internal error"), request.url.path)

    # --- auth and rate limits -----------------------------------------------------------
    async def front_end(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> ApiKey:
        already: ApiKey | None = request.scope.get(AUTHORIZED)
        if already is not None:  # the fast path charged this request and then handed it over
            return already
        return state.authorize(request.headers.get("authorization"))

    Client = Annotated[ApiKey, Depends(front_end)]
    ElectionId = Annotated[str, Path(pattern=admission.ELECTION_ID_PATTERN, max_length=64)]
    TrackingCode = Annotated[str, Path(pattern=admission.TRACKING_CODE_PATTERN)]

    # --- routes ------------------------------------------------------------------------
    @app.post(
        SUBMIT_ROUTE,
        status_code=202,
        response_model=Accepted,
        responses=_responses(SUBMIT_CODES),
        summary="Submit a signed ballot envelope",
    )
    async def submit_ballot(election_id: ElectionId, body: SubmitBallot, client: Client) -> Response:
        return JSONResponse(await state.accept_ballot(election_id, body.ballot), status_code=202)

    @app.get(
        "/v1/receipts/{tracking_code}",
        response_model=ReceiptStatus,
        responses=_responses(RECEIPT_CODES),
        summary="A ballot's receipt: pending, final (with proof and checkpoint) or rejected",
    )
    async def get_receipt(tracking_code: TrackingCode, client: Client) -> Response:
        code = bytes.fromhex(tracking_code)
        record = state.outbox.record(code) if state.outbox is not None and state.outbox.is_open else None
        if record is not None and record.status == "rejected":
            return JSONResponse({"status": "rejected", "tracking_code": tracking_code,
                                 "error": {"code": record.error_code, "detail": record.detail}})
        try:
            answer = await state.rpc().call("ballot_getReceipt", tracking_code)
        except (UpstreamUnavailable, RpcError) as exc:
            if record is not None:
                return JSONResponse({"status": "pending", "tracking_code": tracking_code})
            raise Problem("unavailable", f"no validator answered: {exc}") from None
        if answer.get("status") == "final":
            return JSONResponse({"status": "final", "tracking_code": tracking_code, "receipt": answer["receipt"]})
        if record is not None or answer.get("status") == "pending":
            return JSONResponse({"status": "pending", "tracking_code": tracking_code})
        raise Problem("not_found", f"no ballot with tracking code {tracking_code} is known")

    @app.get(
        "/v1/elections/{election_id}",
        response_model=ElectionView,
        responses=_responses(ELECTION_CODES),
        summary="An election's public definition, phase, counts so far and result",
    )
    async def get_election(election_id: ElectionId, client: Client) -> Response:
        election = state.genesis.election(election_id)
        if election is None:
            raise Problem("unknown_election", f"no election {election_id!r} on chain {state.genesis.chain_id!r}")
        phase = admission.phase_of(election, state.clock_ms())
        counts = await _counts(election_id)
        view = ElectionView(
            election_id=election.election_id, chain_id=state.genesis.chain_id, question=election.question,
            choices=list(election.choices), credential_root=election.credential_root.hex(),
            credential_count=election.credential_count, opens_at_ms=election.opens_at_ms,
            closes_at_ms=election.closes_at_ms, revoting=election.revoting, payload_scheme=election.payload_scheme,
            phase=phase,  # type: ignore[arg-type]
            counts=counts, result=counts if phase == "closed" else None,
        )
        return JSONResponse(view.model_dump(mode="json"))

    async def _counts(election_id: str) -> Counts | None:
        now = time.monotonic()
        if state.results is None or now - state.results[0] > RESULTS_TTL_S:
            try:
                state.results = (now, await state.rpc().call("ballot_getResults"))
            except (UpstreamUnavailable, RpcError, Problem):
                return None
        results = state.results[1]
        entry = results.get("elections", {}).get(election_id)
        if entry is None:
            return None
        return Counts(height=int(results.get("height", 0)), ballots_recorded=entry["ballots_recorded"],
                      ballots_counted=entry["ballots_counted"], tally=entry.get("tally"))

    @app.get("/healthz", response_model=Health, summary="The process is alive")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"description": "`unavailable`: no validator answers or the outbox is closed",
                         "model": ProblemDetail}},
        summary="Ready when a validator answers and the outbox is open",
    )
    async def readyz() -> Response:
        outbox_open = state.outbox is not None and state.outbox.is_open
        upstream = state.upstream
        if upstream is not None and not upstream.any_healthy(READY_WITHIN_S):
            await upstream.probe()
        now = time.monotonic()
        validators = [] if upstream is None else [
            ValidatorHealth(url=e.url, up=bool(e.last_ok) and now - e.last_ok <= READY_WITHIN_S and e.healthy(now),
                            height=e.height)
            for e in upstream.endpoints
        ]
        for v in validators:
            state.metrics.validator_up.labels(v.url).set(1 if v.up else 0)
        if not outbox_open or not any(v.up for v in validators):
            raise Problem("unavailable", f"outbox open: {outbox_open}; validators up: "
                                         f"{sum(v.up for v in validators)}/{len(validators)}")
        depth = len(state.outbox.queue) if state.outbox is not None else 0
        ready = Readiness(status="ready", outbox_open=True, outbox_depth=depth, validators=validators)
        return JSONResponse(ready.model_dump(mode="json"))

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                         "description": "Prometheus text format"}},
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:
        m = state.metrics
        if state.outbox is not None:
            m.outbox_depth.set(len(state.outbox.queue))
        if state.upstream is not None:
            m.failovers.set(state.upstream.failovers)
        return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(
                get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the document say what the server does: every 4xx/5xx is problem+json (FastAPI
    would advertise application/json and its own 422 shape)."""
    ref = {"$ref": "#/components/schemas/Problem"}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = ProblemDetail.model_json_schema(ref_template="#/components/schemas/{model}")
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            for status, response in responses.items():
                if str(status)[0] in "45":
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": ref}}
                    if str(status) == "422" and response.get("description") == "Validation Error":
                        response["description"] = "`validation_error`"
    for name in ("HTTPValidationError", "ValidationError", "ProblemDetail"):
        components.pop(name, None)
    copied: dict[str, Any] = json.loads(json.dumps(schema))
    return copied
