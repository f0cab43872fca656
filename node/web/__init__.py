"""The voter's and observer's page, served by the gateway and by any node's RPC port.

The files in ``static/`` are built from ``web/`` (``scripts/build_web.sh``) and committed:
serving them needs neither npm nor the network. ``static/manifest.json`` lists every file
with its sha256; only those files are served, each checked against it when loaded, and
each kept in memory with its gzip form.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATIC_DIR = Path(__file__).resolve().parent / "static"
MANIFEST = STATIC_DIR / "manifest.json"

# The pages fetch only from their own origin and run only their own scripts.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Swagger UI sets inline styles.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGES = {"/": "index.html", "/receipt": "index.html", "/observer": "observer.html", "/docs": "docs.html"}
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".json": "application/json", "": "text/plain; charset=utf-8"}
STATIC_CACHE = "public, max-age=300"  # file names carry no hash: a short age lets an upgrade show soon


class StaticFilesCorrupt(Exception):
    """A file under static/ differs from the manifest: a broken or edited build."""


@dataclass
class Asset:
    body: bytes
    media_type: str
    etag: str
    _gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes:
        if self._gzipped is None:  # on first use: a node that never serves the page never pays for it
            self._gzipped = gzip.compress(self.body, 9, mtime=0)
        return self._gzipped


class WebAssets:
    def __init__(self, directory: Path = STATIC_DIR) -> None:
        manifest = json.loads((directory / "manifest.json").read_text())
        self.assets: dict[str, Asset] = {}
        for name, digest in manifest["outputs"].items():
            body = (directory / name).read_bytes()
            if hashlib.sha256(body).hexdigest() != digest:
                raise StaticFilesCorrupt(f"{name} does not match static/manifest.json: run scripts/build_web.sh")
            suffix = Path(name).suffix
            self.assets[name] = Asset(body, MEDIA_TYPES.get(suffix, MEDIA_TYPES[""]), f'"{digest[:32]}"')

    def response(self, name: str, request: Request, *, cache_control: str, csp: str | None = None) -> Response:
        asset = self.assets.get(name)
        if asset is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        headers = {"Cache-Control": cache_control, "ETag": asset.etag, "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
        if csp is not None:
            headers["Content-Security-Policy"] = csp
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        body = asset.body
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)

    def routes(self, *, docs: bool = True) -> list[Route]:
        """The pages, and the files under ``/static/`` that the manifest lists; ``docs``:
        also ``/docs`` (where an ``/openapi.json`` is served beside it)."""

        def page(name: str) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                csp = DOCS_CSP if name == "docs.html" else PAGE_CSP
                return self.response(name, request, cache_control="no-cache", csp=csp)
            return endpoint

        async def static(request: Request) -> Response:
            return self.response(request.path_params["name"], request, cache_control=STATIC_CACHE)

        routes = [Route(path, page(name), methods=["GET", "HEAD"]) for path, name in PAGES.items()
                  if docs or name != "docs.html"]
        routes.append(Route("/static/{name:path}", static, methods=["GET", "HEAD"]))
        return routes
