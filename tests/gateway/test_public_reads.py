"""Public reads at a real gateway in front of real validators: receipts, elections,
checkpoints, consistency proofs, the validator set and recent blocks without an API key
(rate-limited per client address, with caching headers and CORS for GET), while
submitting still needs a front end's key."""

from __future__ import annotations

import httpx
import pytest

from ballotledger.localnet import Localnet
from ledger.block import Checkpoint
from ledger.genesis import Genesis
from ledger.hashing import keccak256
from ledger.merkle import verify_consistency
from ledger.receipt import Receipt
from node.gateway.client import GatewayClient
from tests.gateway.harness import MAIN, GatewayProc, Voters
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration
ORIGIN = {"Origin": "http://observer.example"}


@pytest.fixture(scope="module")
def voters(net: Localnet) -> Voters:
    return Voters(net.directory)


def test_a_voter_reads_their_receipt_without_a_key(gateway: GatewayProc, voters: Voters) -> None:
    raw = voters.ballot(300, 1)
    code = keccak256(raw).hex()
    refused = httpx.post(f"{gateway.url}/v1/elections/{MAIN}/ballots", json={"ballot": raw.hex()}, headers=ORIGIN)
    assert refused.status_code == 401  # submitting stays a front end's, with its key
    with GatewayClient(gateway.url, gateway.keys["main"]) as client:
        client.submit(MAIN, raw)
        client.wait_final(code, timeout=30)
    answer = httpx.get(f"{gateway.url}/v1/receipts/{code}", headers=ORIGIN)
    assert answer.status_code == 200 and answer.json()["status"] == "final"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["cache-control"].startswith("public, max-age=")
    Receipt.from_json_obj(answer.json()["receipt"]).verify(voters.genesis)
    elections = httpx.get(f"{gateway.url}/v1/elections").json()
    assert MAIN in [e["election_id"] for e in elections["elections"]]
    assert httpx.get(f"{gateway.url}/v1/elections/{MAIN}").json()["phase"] == "open"


def test_a_recorded_ballot_is_read_by_its_tracking_code(gateway: GatewayProc, net: Localnet, voters: Voters) -> None:
    """The ballot's own bytes, without a key, through the gateway and a node's RPC: what the
    page checks an encrypted ballot's proofs from. Only a recorded ballot is answered."""
    raw = voters.ballot(301, 2)
    code = keccak256(raw).hex()
    rpc = RpcClient(net.rpc_urls[0])
    assert rpc.call("ballot_getBallot", code) == {"status": "unknown", "tracking_code": code}
    with GatewayClient(gateway.url, gateway.keys["main"]) as client:
        client.submit(MAIN, raw)
        receipt = client.wait_final(code, timeout=30)
    answer = httpx.get(f"{gateway.url}/v1/ballots/{code}", headers=ORIGIN)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
    assert "immutable" in answer.headers["cache-control"]
    body = answer.json()
    assert bytes.fromhex(body["ballot"]) == raw
    assert (body["height"], body["log_index"]) == (receipt.height, receipt.log_index)
    node = rpc.call("ballot_getBallot", code)
    assert node == {"status": "final", "tracking_code": code, "height": receipt.height,
                    "log_index": receipt.log_index, "ballot": raw.hex()}
    unknown = httpx.get(f"{gateway.url}/v1/ballots/{'ab' * 32}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert httpx.get(f"{gateway.url}/v1/ballots/XYZ").json()["code"] == "validation_error"


def test_cors_allows_reads_and_no_submissions(gateway: GatewayProc) -> None:
    get = httpx.options(f"{gateway.url}/v1/checkpoint",
                        headers={**ORIGIN, "Access-Control-Request-Method": "GET"})
    assert get.status_code == 200 and "GET" in get.headers["access-control-allow-methods"]
    post = httpx.options(f"{gateway.url}/v1/elections/{MAIN}/ballots",
                         headers={**ORIGIN, "Access-Control-Request-Method": "POST"})
    assert post.status_code == 400 and "POST" not in post.headers["access-control-allow-methods"]


def test_chain_checkpoints_and_consistency_check_out(gateway: GatewayProc, voters: Voters) -> None:
    chain = httpx.get(f"{gateway.url}/v1/chain").json()
    genesis = Genesis.from_json_obj(chain["genesis"])
    assert chain["genesis_hash"] == genesis.hash().hex() == voters.genesis.hash().hex()
    assert [v["public_key"] for v in chain["validators"]] == [v.public_key.hex() for v in genesis.validators.validators]
    latest = httpx.get(f"{gateway.url}/v1/checkpoint")
    assert latest.headers["cache-control"] == "public, max-age=1"
    new = Checkpoint.decode(bytes.fromhex(latest.json()["checkpoint"]))
    new.check(genesis.validators)
    assert latest.json()["log_root"] == new.header.log_root.hex() and latest.json()["height"] == new.header.height
    early = httpx.get(f"{gateway.url}/v1/checkpoint", params={"height": 1})
    assert "immutable" in early.headers["cache-control"]
    old = Checkpoint.decode(bytes.fromhex(early.json()["checkpoint"]))
    old.check(genesis.validators)
    proof = httpx.get(f"{gateway.url}/v1/consistency",
                      params={"old_size": old.header.log_size, "new_size": new.header.log_size}).json()["proof"]
    verify_consistency(old.header.log_size, new.header.log_size, old.header.log_root, new.header.log_root,
                       [bytes.fromhex(h) for h in proof])
    assert httpx.get(f"{gateway.url}/v1/checkpoint", params={"height": 10**9}).json()["code"] == "not_found"
    assert httpx.get(f"{gateway.url}/v1/consistency",
                     params={"old_size": 5, "new_size": 2}).json()["code"] == "validation_error"


def test_recent_blocks_name_their_signers(gateway: GatewayProc, voters: Voters) -> None:
    view = httpx.get(f"{gateway.url}/v1/blocks/recent", params={"limit": 5}).json()
    heights = [b["height"] for b in view["blocks"]]
    assert 1 <= len(heights) <= 5 and heights == sorted(heights, reverse=True) and heights[0] <= view["height"]
    powers = voters.genesis.validators
    for block in view["blocks"]:
        assert powers.has_quorum(sum(powers.validators[i].power for i in block["signers"]))
    signed = [v["last_signed_height"] for v in view["validators"]]
    assert len(signed) == len(powers) and max(s or 0 for s in signed) == heights[0]


def test_keyless_reads_are_limited_per_address(net: Localnet) -> None:
    """Fails when keyless reads are not charged (the fourth read passes) or are charged to
    one bucket for everyone (the other address is refused too): both tried by hand."""
    gw = GatewayProc(net.directory / "gateway-public", list(net.rpc_urls),
                     options={"public_read_rate_per_s": 0.2, "public_read_burst": 3})
    gw.start()
    try:
        answers = [httpx.get(f"{gw.url}/v1/chain") for _ in range(3)]
        answers.append(httpx.get(f"{gw.url}/v1/ballots/{'ab' * 32}"))  # charged like every public read
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[-1].json()["code"] == "rate_limited" and int(answers[-1].headers["retry-after"]) >= 1
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        assert other.get(f"{gw.url}/v1/chain").status_code == 200  # another address has its own bucket
        assert httpx.get(f"{gw.url}/v1/chain", headers=gw.auth).status_code == 200  # a front end's key is its own
    finally:
        gw.stop()
