"""HTTPS with mutual TLS: a front end must present a certificate the configured CA signed
(and its API key); without one the handshake fails before any HTTP is spoken."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ballotledger.localnet import Localnet
from tests.gateway.harness import GatewayProc

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def _pki(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, extra in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "1", *extra, cwd=d)
    _openssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "1", "-subj", "/CN=rogue",
             cwd=d)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates")
def test_mutual_tls(net: Localnet, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    _pki(pki)
    gw = GatewayProc(net.directory / "gw-mtls", net.rpc_urls, options={
        "tls_certfile": str(pki / "server.pem"), "tls_keyfile": str(pki / "server.key"),
        "tls_client_ca": str(pki / "ca.pem"),
    })
    gw.write_config()
    try:
        with pytest.raises((RuntimeError, TimeoutError)):
            gw.start(timeout=3)  # the harness polls plain HTTP: nothing answers it any more
        url = f"https://127.0.0.1:{gw.port}"
        trusted = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        trusted.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(url + "/healthz", verify=trusted, timeout=2)
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
        assert httpx.get(url + "/v1/elections/board-2026", verify=trusted, headers=gw.auth).status_code == 200
        no_cert = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        rogue = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        rogue.load_cert_chain(str(pki / "rogue.pem"), str(pki / "rogue.key"))
        for context in (no_cert, rogue):
            with pytest.raises(httpx.HTTPError):
                httpx.get(url + "/healthz", verify=context, timeout=5).raise_for_status()
    finally:
        gw.stop()
