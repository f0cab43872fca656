"""Run the gateway under uvicorn (one process, one event loop)."""

from __future__ import annotations

import logging
import ssl

import uvicorn

from node.gateway.app import create_app
from node.gateway.config import GatewayConfig
from node.gateway.edge import EdgeMiddleware


def run_gateway(config: GatewayConfig, *, log_level: str = "info", access_log: bool = False) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per RPC call otherwise
    app = EdgeMiddleware(create_app(config))
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level.lower(),
        access_log=access_log,  # per-request log lines cost more than the request at load
        loop="auto",  # uvloop when installed
        timeout_graceful_shutdown=10,
        ssl_certfile=str(config.tls_certfile) if config.tls_certfile else None,
        ssl_keyfile=str(config.tls_keyfile) if config.tls_keyfile else None,
        ssl_ca_certs=str(config.tls_client_ca) if config.tls_client_ca else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if config.tls_client_ca else ssl.CERT_NONE,
        **config.http_limits.uvicorn_options(),  # its own httptools protocol: "http" is not passed
    )
