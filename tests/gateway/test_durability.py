"""A 202 survives the gateway's crash; a validator's crash is failed over."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from ballotledger.localnet import Localnet
from ballotledger.netsetup import free_ports
from ledger.block import Block
from ledger.hashing import keccak256
from tests.gateway.harness import MAIN, GatewayProc, Voters, wait_until
from tests.gateway.test_gateway import assert_problem
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def voters(net: Localnet) -> Voters:
    return Voters(net.directory)


def times_on_chain(net: Localnet, codes: list[str]) -> Counter[str]:
    """How often each tracking code appears in the committed blocks (node 0's chain)."""
    wanted = set(codes)
    seen: Counter[str] = Counter()
    with RpcClient(net.rpc_urls[1]) as c:
        tip = c.call("ballot_status")["height"]
        for start in range(1, tip + 1, 500):
            for entry in c.call("ballot_getBlocks", start, 500)["blocks"]:
                for raw in Block.decode(bytes.fromhex(entry["block"])).ballots:
                    code = keccak256(raw).hex()
                    if code in wanted:
                        seen[code] += 1
    return seen


async def submit_all(gw: GatewayProc, raws: list[bytes]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=gw.url, headers=gw.auth, timeout=20) as http:
        return await asyncio.gather(
            *(http.post(f"/v1/elections/{MAIN}/ballots", json={"ballot": raw.hex()}) for raw in raws)
        )


def all_final(gw: GatewayProc, codes: list[str]) -> bool:
    with httpx.Client(base_url=gw.url, headers=gw.auth, timeout=10) as http:
        return all(http.get(f"/v1/receipts/{c}").json().get("status") == "final" for c in codes)


def test_kill_9_with_no_validator_reachable_then_restart(net: Localnet, voters: Voters) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    gw = GatewayProc(net.directory / "gw-crash-offline", [dead])
    gw.start()
    try:
        raws = [voters.ballot(i, i % 3) for i in range(100, 130)]
        answers = asyncio.run(submit_all(gw, raws))
        assert [a.status_code for a in answers] == [202] * len(raws)  # durable, though no validator answers
        assert_problem(httpx.get(f"{gw.url}/readyz"), 503, "unavailable")
        assert_problem(httpx.get(f"{gw.url}/v1/receipts/{'cd' * 32}", headers=gw.auth), 503, "unavailable")
        pending = httpx.get(f"{gw.url}/v1/receipts/{answers[0].json()['tracking_code']}", headers=gw.auth)
        assert pending.json()["status"] == "pending"
    finally:
        gw.kill()
    codes = [a.json()["tracking_code"] for a in answers]
    gw.validators = list(net.rpc_urls)
    gw.write_config()
    gw.start()
    try:
        wait_until(lambda: all_final(gw, codes), timeout=40, what="ballots final after the restart")
        assert times_on_chain(net, codes) == Counter(dict.fromkeys(codes, 1))
        # and again after the fact: the same answer, no second ballot
        again = asyncio.run(submit_all(gw, raws[:5]))
        assert [a.json()["tracking_code"] for a in again] == codes[:5]
    finally:
        gw.stop()


def test_kill_9_right_after_202_exactly_once(net: Localnet, voters: Voters) -> None:
    gw = GatewayProc(net.directory / "gw-crash-online", list(net.rpc_urls), options={"resubmit_after_s": 2.0})
    gw.start()
    raws = [voters.ballot(i, i % 3) for i in range(130, 190)]
    try:
        answers = asyncio.run(submit_all(gw, raws))
    finally:
        gw.kill()  # at once: some ballots were forwarded, some only in the outbox
    assert [a.status_code for a in answers] == [202] * len(raws)
    codes = [a.json()["tracking_code"] for a in answers]
    gw.start()
    try:
        wait_until(lambda: all_final(gw, codes), timeout=40, what="ballots final after the restart")
        # re-sent ballots the chain already had are not counted twice
        assert times_on_chain(net, codes) == Counter(dict.fromkeys(codes, 1))
    finally:
        gw.stop()


def test_validator_killed_gateway_fails_over(net: Localnet, gateway: GatewayProc, voters: Voters) -> None:
    net.kill(0)  # the gateway's first-priority validator
    try:
        raws = [voters.ballot(i, i % 3) for i in range(200, 240)]
        answers = asyncio.run(submit_all(gateway, raws))
        assert [a.status_code for a in answers] == [202] * len(raws)
        codes = [a.json()["tracking_code"] for a in answers]
        wait_until(lambda: all_final(gateway, codes), timeout=40, what="ballots final with validator 0 down")

        def ready_without_validator_0() -> bool:
            # Validator 0 counts as up until its last answer is READY_WITHIN_S old (5 s),
            # which the ballots may beat to finality.
            ready = httpx.get(f"{gateway.url}/readyz").json()
            return bool(ready["status"] == "ready" and not ready["validators"][0]["up"])

        wait_until(ready_without_validator_0, timeout=15, what="readyz: ready, validator 0 down")
        assert times_on_chain(net, codes) == Counter(dict.fromkeys(codes, 1))
    finally:
        net.start(0)
        net.wait_ready(indexes=[0])
