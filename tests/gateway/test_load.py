"""A bounded load through one gateway: every ballot accepted once, durable, then final."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ballotledger.localnet import Localnet
from tests.gateway.harness import REVOTE, GatewayProc, Voters, wait_until

pytestmark = pytest.mark.integration

BALLOTS = 300
CONCURRENCY = 32


async def offer(gw: GatewayProc, raws: list[bytes]) -> tuple[list[int], list[float], list[str]]:
    statuses: list[int] = []
    latencies: list[float] = []
    codes: list[str] = []
    queue = list(enumerate(raws))
    limits = httpx.Limits(max_connections=CONCURRENCY)

    async with httpx.AsyncClient(base_url=gw.url, headers=gw.auth, timeout=20, limits=limits) as http:

        async def worker() -> None:
            while queue:
                _, raw = queue.pop()
                started = time.perf_counter()
                r = await http.post(f"/v1/elections/{REVOTE}/ballots", json={"ballot": raw.hex()})
                latencies.append(time.perf_counter() - started)
                statuses.append(r.status_code)
                if r.status_code == 202:
                    codes.append(r.json()["tracking_code"])

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return statuses, latencies, codes


def test_bounded_load(net: Localnet, gateway: GatewayProc) -> None:
    voters = Voters(net.directory)
    raws = [voters.ballot(i, i % 3, election=REVOTE) for i in range(BALLOTS)]
    statuses, latencies, codes = asyncio.run(offer(gateway, raws))
    assert statuses == [202] * BALLOTS and len(set(codes)) == BALLOTS
    latencies.sort()
    assert latencies[int(0.99 * len(latencies))] < 2.0  # loose: CI shares two cores with 4 validators
    metrics = httpx.get(f"{gateway.url}/metrics").text
    commits = next(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("gateway_outbox_commit_ballots_count"))
    assert commits < BALLOTS  # group commit: fewer fsyncs than ballots

    def final_count() -> int:
        with httpx.Client(base_url=gateway.url, headers=gateway.auth, timeout=10) as http:
            return int(http.get(f"/v1/elections/{REVOTE}").json()["counts"]["ballots_recorded"])

    wait_until(lambda: final_count() >= BALLOTS, timeout=40, what="all load ballots final")
