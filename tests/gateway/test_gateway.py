"""The gateway as a front end sees it: a real gateway process in front of 4 real validators."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from ballotledger.localnet import Localnet
from ledger.ballot import BallotEnvelope
from ledger.crypto import SigningKey
from ledger.hashing import keccak256
from ledger.receipt import Receipt
from ledger.rules import ballot_context
from ledger.voter import encrypted_ballot
from node.gateway.client import GatewayClient, GatewayProblem
from node.gateway.problems import PROBLEM_MEDIA_TYPE
from tests.crypto.helpers import forge_ballot
from tests.gateway.harness import CLOSED, FUTURE, MAIN, REVOTE, ROOT, SECRET, GatewayProc, Voters, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def voters(net: Localnet) -> Voters:
    return Voters(net.directory)


def post(gw: GatewayProc, election: str, raw: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/elections/{election}/ballots", json={"ballot": raw.hex()},
                      headers=gw.auth if headers is None else headers, timeout=10)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body: dict[str, object] = response.json()
    assert body["code"] == code and body["status"] == status
    assert {"type", "title", "detail"} <= set(body) and str(body["type"]).endswith(code)
    return body


def test_happy_path_to_a_verified_final_receipt(gateway: GatewayProc, voters: Voters) -> None:
    raws = [voters.ballot(i, i % 3) for i in range(5)]
    with GatewayClient(gateway.url, gateway.keys["main"]) as client:
        answers = [client.submit(MAIN, raw) for raw in raws]
        assert [a["tracking_code"] for a in answers] == [keccak256(r).hex() for r in raws]
        assert answers[0]["receipt_url"] == f"/v1/receipts/{answers[0]['tracking_code']}"
        for answer in answers:
            receipt = client.wait_final(answer["tracking_code"], timeout=30)
            receipt.verify(voters.genesis)
            assert receipt.election_id == MAIN and receipt.height >= 1
        # the same envelope again: the same answer, never a second ballot
        assert client.submit(MAIN, raws[0]) == answers[0]
        wait_until(lambda: client.election(MAIN)["counts"]["ballots_recorded"] >= 5, what="counts")  # type: ignore[index]
        view = client.election(MAIN)
    assert view["phase"] == "open" and view["result"] is None and view["choices"] == ["yes", "no", "abstain"]
    assert view["counts"]["ballots_counted"] == view["counts"]["ballots_recorded"]


def test_vote_command_saves_a_verified_receipt(gateway: GatewayProc, net: Localnet, tmp_path: object) -> None:
    out = net.directory / "receipt-22.json"
    result = subprocess.run(
        [sys.executable, "-c", "from ballotledger.gateway_cli import app; app()", "vote", "--dir", str(net.directory),
         "--voter", "22", "--choice", "1", "--gateway", gateway.url, "--out", str(out), "--timeout", "30"],
        capture_output=True, text=True, cwd=str(ROOT), env={"BALLOTLEDGER_API_KEY": gateway.keys["main"],
                                                            "PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    Receipt.from_json_obj(__import__("json").loads(out.read_text())).verify(Voters(net.directory).genesis)


def test_every_ledger_refusal_keeps_its_code(gateway: GatewayProc, voters: Voters) -> None:
    good = voters.ballot(10)
    assert_problem(post(gateway, MAIN, bytes.fromhex("00ff")), 400, "bad_encoding")
    assert_problem(post(gateway, MAIN, good[:-2]), 400, "bad_encoding")
    assert_problem(post(gateway, MAIN, b"\x01" * 5000), 413, "oversized")
    forged = bytearray(good)
    forged[-5] ^= 1
    assert_problem(post(gateway, MAIN, bytes(forged)), 422, "bad_signature")
    stranger = SigningKey.from_seed(b"not registered")
    proof = voters.envelope(11).proof
    outsider = BallotEnvelope.create(stranger, chain_id=voters.genesis.chain_id, election_id=MAIN, proof=proof,
                                     payload=b"\x00").encode()
    assert_problem(post(gateway, MAIN, outsider), 422, "not_in_credential_set")
    assert_problem(post(gateway, MAIN, voters.ballot(12, chain_id="otherchain")), 422, "wrong_chain")
    assert_problem(post(gateway, "no-such-election", good), 404, "unknown_election")
    assert_problem(post(gateway, REVOTE, good), 422, "election_mismatch")
    assert_problem(post(gateway, CLOSED, voters.ballot(13, election=CLOSED)), 409, "election_not_open")
    assert_problem(post(gateway, FUTURE, voters.ballot(13, election=FUTURE)), 409, "election_not_open")
    # payload out of the election's choices: the ledger calls it bad_encoding
    assert_problem(post(gateway, MAIN, voters.ballot(14, choice=7)), 400, "bad_encoding")


def test_duplicate_credential_first_counts_and_revoting_last_counts(gateway: GatewayProc, voters: Voters) -> None:
    first = post(gateway, MAIN, voters.ballot(20, 0))
    assert first.status_code == 202
    assert_problem(post(gateway, MAIN, voters.ballot(20, 1)), 409, "duplicate_credential")
    assert post(gateway, MAIN, voters.ballot(20, 0)).json() == first.json()  # the first one, again: fine
    a = post(gateway, REVOTE, voters.ballot(21, 0, election=REVOTE))
    b = post(gateway, REVOTE, voters.ballot(21, 1, election=REVOTE))
    assert a.status_code == b.status_code == 202 and a.json() != b.json()
    with GatewayClient(gateway.url, gateway.keys["main"]) as client:
        for r in (first, a, b):
            client.wait_final(r.json()["tracking_code"], timeout=30)
        wait_until(lambda: (client.election(REVOTE)["counts"] or {}).get("ballots_recorded", 0) >= 2, what="count")
        counts = client.election(REVOTE)["counts"]
    assert counts["ballots_counted"] <= counts["ballots_recorded"]
    assert counts["tally"]["no"] >= 1


def test_http_level_refusals(gateway: GatewayProc, voters: Voters) -> None:
    url = f"{gateway.url}/v1/elections/{MAIN}/ballots"
    raw = voters.ballot(15)
    assert_problem(post(gateway, MAIN, raw, headers={}), 401, "unauthorized")
    r = post(gateway, MAIN, raw, headers={"Authorization": "Bearer wrong"})
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_problem(httpx.post(url, json={"ballot": "zz"}, headers=gateway.auth), 422, "validation_error")
    assert_problem(httpx.post(url, json={}, headers=gateway.auth), 422, "validation_error")
    assert_problem(httpx.post(url, content=b"{not json", headers={**gateway.auth, "content-type": "application/json"}),
                   422, "validation_error")
    assert_problem(httpx.post(url, content=b"x" * 70_000, headers=gateway.auth), 413, "payload_too_large")
    chunked = httpx.post(url, content=iter([b"x" * 40_000, b"x" * 40_000]), headers=gateway.auth)
    assert_problem(chunked, 413, "payload_too_large")
    assert_problem(httpx.get(f"{gateway.url}/v1/receipts/{'ab' * 32}", headers=gateway.auth), 404, "not_found")
    assert_problem(httpx.get(f"{gateway.url}/v1/receipts/xyz", headers=gateway.auth), 422, "validation_error")
    assert_problem(httpx.get(f"{gateway.url}/v1/nothing", headers=gateway.auth), 404, "not_found")
    assert_problem(httpx.delete(url, headers=gateway.auth), 405, "method_not_allowed")
    assert_problem(httpx.get(f"{gateway.url}/v1/elections/nope", headers=gateway.auth), 404, "unknown_election")
    slow = {"Authorization": f"Bearer {gateway.keys['slow']}"}
    answers = [httpx.get(f"{gateway.url}/v1/elections/{MAIN}", headers=slow) for _ in range(4)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert_problem(limited[0], 429, "rate_limited")
    assert int(limited[0].headers["retry-after"]) >= 1


def test_health_ready_metrics_openapi(gateway: GatewayProc) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz").json()
    assert ready["status"] == "ready" and ready["outbox_open"] and any(v["up"] for v in ready["validators"])
    metrics = httpx.get(f"{gateway.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "gateway_ballots_accepted_total" in metrics.text and "gateway_outbox_commit_ballots_bucket" in metrics.text
    schema = httpx.get(f"{gateway.url}/openapi.json").json()
    post_op = schema["paths"]["/v1/elections/{election_id}/ballots"]["post"]
    assert {"202", "400", "401", "404", "409", "413", "422", "429", "503"} <= set(post_op["responses"])
    assert list(post_op["responses"]["409"]["content"]) == [PROBLEM_MEDIA_TYPE]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_client_raises_problems(gateway: GatewayProc, voters: Voters) -> None:
    with GatewayClient(gateway.url, gateway.keys["main"]) as client, pytest.raises(GatewayProblem) as info:
        client.submit(CLOSED, voters.ballot(16, election=CLOSED))
    assert info.value.code == "election_not_open" and info.value.status == 409


def test_an_encrypted_election_through_the_gateway(gateway: GatewayProc, voters: Voters) -> None:
    """A front end reads the encrypted election's contests and joint key from the gateway,
    the voter's device encrypts to that key, the ballot goes final through real validators;
    a ballot whose proof lies is refused at the gateway with bad_ballot_proof; nothing shows
    a count per choice."""
    with GatewayClient(gateway.url, gateway.keys["main"]) as client:
        view = client.election(SECRET)
        assert view["payload_scheme"] == "elgamal-secp256k1/v1" and view["choices"] == []
        assert [c["choices"] for c in view["contests"]] == [["ada", "grace", "alan"], ["yes", "no"]]  # type: ignore[index]
        election = voters.genesis.election(SECRET)
        assert election is not None and view["joint_key"] == election.joint_key.hex()
        key = voters.keys[7]
        envelope, _opening = encrypted_ballot(key, chain_id=voters.genesis.chain_id, election=election,
                                              proof=voters.credentials.proof(key.public_key), selected=[[2], [0]])
        answer = client.submit(SECRET, envelope.encode())
        receipt = client.wait_final(answer["tracking_code"], timeout=30)
        receipt.verify(voters.genesis)
        liar = voters.keys[8]
        context = ballot_context(voters.genesis.chain_id, election, liar.public_key)
        forged = forge_ballot(context, [[0, 2, 0], [1, 0]], [[0, 1, 0], [1, 0]], [1, 1]).encode()
        bad = BallotEnvelope.create(liar, chain_id=voters.genesis.chain_id, election_id=SECRET,
                                    proof=voters.credentials.proof(liar.public_key), payload=forged)
        body = assert_problem(post(gateway, SECRET, bad.encode()), 422, "bad_ballot_proof")
        assert "contest 0 selection 1" in str(body["detail"])
        wait_until(lambda: (client.election(SECRET)["counts"] or {}).get("ballots_recorded") == 1,  # type: ignore[union-attr]
                   what="counts")
        counts = client.election(SECRET)["counts"]
    assert counts["tally"] is None  # type: ignore[index]
