"""The page over HTTP from a real gateway: its pages and files, gzip, caching and the
content security policy; only the files the manifest lists; /docs without a CDN."""

from __future__ import annotations

import gzip

import httpx
import pytest

from node.web import STATIC_DIR
from tests.gateway.harness import GatewayProc

pytestmark = pytest.mark.integration


def test_pages_and_files_are_served_from_the_gateway(gateway: GatewayProc) -> None:
    for path in ("/", "/receipt", "/observer", "/docs"):
        page = httpx.get(gateway.url + path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "cdn" not in page.text.lower() and "https://" not in page.text
    app = httpx.get(f"{gateway.url}/static/app.js", headers={"Accept-Encoding": "gzip"})
    assert app.headers["content-encoding"] == "gzip" and app.content == (STATIC_DIR / "app.js").read_bytes()
    assert app.headers["content-type"].startswith("text/javascript")
    again = httpx.get(f"{gateway.url}/static/app.js", headers={"If-None-Match": app.headers["etag"]})
    assert again.status_code == 304
    raw = httpx.get(f"{gateway.url}/static/docs/swagger-ui-bundle.js", headers={"Accept-Encoding": "identity"})
    assert raw.status_code == 200 and "content-encoding" not in raw.headers
    assert gzip.decompress(gzip.compress(raw.content)) == (STATIC_DIR / "docs" / "swagger-ui-bundle.js").read_bytes()
    for missing in ("/static/nothing.js", "/static/../__init__.py", "/static/%2e%2e/__init__.py", "/redoc"):
        assert httpx.get(gateway.url + missing).status_code == 404
    assert "/" not in httpx.get(f"{gateway.url}/openapi.json").json()["paths"]  # pages are not API operations
