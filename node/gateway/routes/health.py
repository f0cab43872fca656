"""``/healthz``, ``/readyz`` and ``/metrics``: for the operator, not the front ends (no key)."""

# No "from __future__ import annotations": FastAPI inspects the routes' signatures.
import time

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from node.gateway.deps import State, new_router
from node.gateway.models import Health, ProblemDetail, Readiness, ValidatorHealth
from node.gateway.problems import Problem

READY_WITHIN_S = 5.0  # a validator counts as up if it answered this recently

router = new_router()


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"description": "`unavailable`: no validator answers or the outbox is closed",
                     "model": ProblemDetail}},
    summary="Ready when a validator answers and the outbox is open",
)
async def readyz(state: State) -> Response:
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


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics(state: State) -> Response:
    m = state.metrics
    if state.outbox is not None:
        m.outbox_depth.set(len(state.outbox.queue))
    if state.upstream is not None:
        m.failovers.set(state.upstream.failovers)
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
