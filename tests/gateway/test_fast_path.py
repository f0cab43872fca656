"""The edge's fast path and FastAPI's submit route give the same answers.

Requests with ``Content-Type: application/json`` take the fast path; the same requests as
``application/merge-patch+json`` (JSON too, which FastAPI parses) go through FastAPI's
routing and dependencies. Fails when the two drift apart (checked by hand once by making
the fast path skip auth when no Authorization header is sent: the unauthorized case
answered 202 on the fast path and 401 on the route)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ballotledger.localnet import Localnet
from tests.gateway.harness import CLOSED, MAIN, REVOTE, GatewayProc, Voters

pytestmark = pytest.mark.integration

FAST = "application/json"
ROUTE = "application/merge-patch+json"


def _answer(gw: GatewayProc, election: str, body: bytes, content_type: str, auth: bool = True) -> tuple[int, Any]:
    headers = {"content-type": content_type, **(gw.auth if auth else {})}
    r = httpx.post(f"{gw.url}/v1/elections/{election}/ballots", content=body, headers=headers, timeout=10)
    payload = r.json()
    return r.status_code, payload.get("code", payload.get("tracking_code"))


def test_fast_path_and_route_agree(gateway: GatewayProc, net: Localnet) -> None:
    voters = Voters(net.directory)

    def ballot(raw: bytes) -> bytes:
        return json.dumps({"ballot": raw.hex()}).encode()

    cases: list[tuple[str, bytes, bool]] = [
        (MAIN, ballot(voters.ballot(390, 1)), True),                    # accepted (then the same again)
        (MAIN, ballot(voters.ballot(390, 2)), True),                    # duplicate_credential
        (REVOTE, ballot(voters.ballot(391, 1)), True),                  # election_mismatch
        (CLOSED, ballot(voters.ballot(392, election=CLOSED)), True),    # election_not_open
        ("nowhere", ballot(voters.ballot(393)), True),                  # unknown_election
        (MAIN, ballot(bytes.fromhex("00ff")), True),                    # bad_encoding
        (MAIN, b'{"ballot": "zz"}', True),                              # validation_error (schema)
        (MAIN, b'{"ballot": "00", "extra": 1}', True),                  # validation_error (extra field)
        (MAIN, b'{"ballot": 5}', True),                                 # validation_error (type)
        (MAIN, b"{not json", True),                                     # validation_error (JSON)
        (MAIN, b'{"ballot": ' + b"[" * 20 + b"]" * 20 + b"}", True),     # too_deep
        (MAIN, ballot(voters.ballot(394)), False),                      # unauthorized
    ]
    for election, body, auth in cases:
        fast = _answer(gateway, election, body, FAST, auth)
        route = _answer(gateway, election, body, ROUTE, auth)
        assert fast == route, (election, body[:60], fast, route)
    assert _answer(gateway, MAIN, cases[0][1], FAST)[0] == 202
