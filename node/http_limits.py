"""HTTP limits for both servers (the node's JSON-RPC and the gateway), and the uvicorn
protocol that enforces those uvicorn has no setting for.

| limit (config key) | default | a client that breaks it gets |
|---|---|---|
| ``max_header_bytes``: request line and headers | 16 KiB | 431, connection closed |
| ``max_headers``: number of header fields | 64 | 431, connection closed |
| ``header_timeout_s``: from connect (or a request's first byte) to its last header | 10 s | 408, closed |
| ``body_timeout_s``: from the end of the headers to the end of the body | 10 s | 408, connection closed |
| ``max_connections``: open connections | 1000 | 503 at connect, connection closed |
| ``keep_alive_s``: idle time between requests | 5 s | connection closed |
| body size (the server's own setting) | RPC 32 MiB, gateway 64 KiB | 413 |

uvicorn bounds idle keep-alive and (with ``limit_concurrency``) the requests in flight;
its httptools protocol buffers a header of any size and waits forever for slow headers
and bodies. :class:`LimitedHttpProtocol` adds the rest: header bytes are counted as they
arrive (a 100 MB header is refused after the limit plus one read), and one timer per
connection bounds the phase it is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 16 * 1024
    max_headers: int = 64
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_connections: int = 1000
    keep_alive_s: float = 5.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"{f.name} must be positive")

    @classmethod
    def from_obj(cls, raw: Mapping[str, Any]) -> HttpLimits:
        """The limits a config table sets (other keys are the caller's); the rest default."""
        return cls(**{f.name: type(getattr(cls, f.name))(raw[f.name]) for f in fields(cls) if f.name in raw})

    def to_obj(self) -> dict[str, Any]:
        return asdict(self)

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run``."""
        limits = self

        class Protocol(LimitedHttpProtocol):
            pass

        Protocol.limits = limits
        return {"http": Protocol, "limit_concurrency": self.max_connections, "timeout_keep_alive": self.keep_alive_s}


class _Refused(Exception):
    """Raised from a parser callback: answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header size and count limits, a deadline for the
    headers and one for the body, and a bound on open connections."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers (or waiting for one)
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "too many connections")
            return
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._deadline is None:  # the first byte of a next request on a kept-alive connection
                self._arm(self.limits.header_timeout_s)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self._refuse(exc.__context__.status, exc.__context__.reason)
            else:
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # Bytes counted only while the head is still incomplete: a head that ends in this
        # read is measured exactly by on_headers_complete.
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, "request headers too large")

    # -- parser callbacks ------------------------------------------------------------
    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            raise _Refused(431, "request headers too large")
        if len(self.headers) > self.limits.max_headers:
            raise _Refused(431, "too many request headers")
        self._in_head = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()
        self._arm(self.limits.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._in_head = True

    # -- deadlines -------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self._in_head and cycle is not None and not cycle.response_complete:
            # a pipelined request's head while the previous answer is still being made
            self._arm(self.limits.header_timeout_s)
            return
        if not self._in_head and cycle is not None and cycle.response_started and not cycle.response_complete:
            return  # the answer is on its way; uvicorn closes after it
        self._refuse(408, "request not received in time")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` unless this request was answered (or is being answered: an
        app may answer before it reads the body), then close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle  # while in a head: the previous request's, if any
        if cycle is None or (cycle.response_complete if self._in_head else not cycle.response_started):
            body = reason.encode()
            self.transport.write(b"".join([
                STATUS_LINE[status],
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            ]))
        self.transport.close()
