"""The FastAPI app: state, lifespan, routers, problem rendering and the OpenAPI document.

Routes live in :mod:`node.gateway.routes`, one router per resource; what they depend on
(state, auth, path parameters) in :mod:`node.gateway.deps`. Handlers stay thin: parse,
call :mod:`node.gateway.admission` / the outbox / the upstream, render. The server wraps
the app in :class:`node.gateway.edge.EdgeMiddleware`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from ledger.genesis import Genesis
from node.gateway.config import GatewayConfig, load_keys
from node.gateway.forwarder import Forwarder
from node.gateway.http_problems import install_handlers, problem_openapi
from node.gateway.metrics import Metrics
from node.gateway.outbox import Outbox
from node.gateway.routes import ballots, elections, health, public, receipts
from node.gateway.state import GatewayState
from node.gateway.upstream import Upstream
from node.web import WebAssets

log = logging.getLogger(__name__)


def create_app(config: GatewayConfig, *, clock_ms: Callable[[], int] | None = None) -> FastAPI:
    genesis = Genesis.from_json(config.genesis_file.read_bytes())
    state = GatewayState(
        config=config,
        genesis=genesis,
        keys=load_keys(config.api_keys_file),
        metrics=Metrics(),
        clock_ms=clock_ms or (lambda: int(time.time() * 1000)),
    )
    app = FastAPI(
        title="ballot-ledger gateway",
        version="1",
        description="Front ends submit signed ballots (with their API key); anyone reads receipts, elections, "
                    "checkpoints, consistency proofs and the validator set (no key; rate-limited per address).",
        lifespan=_lifespan(state),
        docs_url=None,  # /docs is the page's own, with Swagger UI's files served from here (no CDN)
        redoc_url=None,
    )
    app.state.gateway = state
    install_handlers(app)
    for resource in (ballots, receipts, elections, public, health):
        app.include_router(resource.router)
    # Any page may read the public data (receipts, elections, checkpoints); none may submit
    # from a browser: submissions come from front ends, with their key, not from scripts.
    app.router.routes.extend(WebAssets().routes())  # the page, /docs and their files
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_credentials=False,
                       expose_headers=["Retry-After"], max_age=600)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(
                get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _lifespan(state: GatewayState) -> Callable[[FastAPI], Any]:
    """Start the submission checks' workers, open the outbox, the upstream and the
    forwarder for the server's lifetime."""
    config = state.config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.submissions().start()
        state.outbox = Outbox(
            config.outbox_dir, max_items=config.commit_max_items, linger_s=config.commit_linger_ms / 1000
        )
        state.outbox.on_commit = state.metrics.commit_size.observe
        state.outbox.start()
        state.upstream = Upstream(config.validators, timeout_s=config.rpc_timeout_s,
                                  genesis_hash=state.genesis.hash().hex())
        state.forwarder = Forwarder(
            state.outbox, state.upstream, state.metrics, batch=config.forward_batch,
            interval_s=config.forward_interval_ms / 1000, resubmit_after_s=config.resubmit_after_s,
        )
        state.forwarder.start()
        directory = asyncio.get_running_loop().create_task(
            state.directory.refresh_loop(state.upstream), name="election-directory")
        log.info("gateway for chain %s: %d ballots waiting in the outbox",
                 state.genesis.chain_id, len(state.outbox.queue))
        try:
            yield
        finally:
            directory.cancel()
            await asyncio.gather(directory, return_exceptions=True)
            await state.forwarder.stop()
            await state.outbox.close()
            await state.upstream.close()
            state.submissions().close()

    return lifespan
