"""Load generator: signed ballots offered to the validators' RPC, finality observed.

Ballots are signed before the clock starts (signing is the voters' work, not the
chain's). Submission goes round-robin over the nodes in batches (``ballot_submitBatch``);
finality is observed by following committed blocks (``ballot_getBlocks``) on one node,
so a latency is submit-to-final as an observer sees it, to within the poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ballotledger.netsetup import read_voters, voter_key
from ledger.ballot import BallotEnvelope
from ledger.block import Block
from ledger.credentials import CredentialSet
from ledger.files import load_genesis
from ledger.hashing import keccak256

POLL_S = 0.05
SUBMIT_ATTEMPTS = 3


def make_ballots(
    directory: Path, count: int, *, offset: int = 0, choice: Callable[[int], int] | None = None
) -> list[bytes]:
    """``count`` ballots from the demo voters of a network made by ``init_network``;
    voter ``i`` picks ``choice(i)`` (default ``i % 3``)."""
    genesis = load_genesis(directory / "genesis.json")
    voters = read_voters(directory)
    if offset + count > voters["count"]:
        raise ValueError(f"only {voters['count']} demo voters; asked for {offset + count}")
    keys = [voter_key(voters["seed"], i) for i in range(voters["count"])]
    credentials = CredentialSet([k.public_key for k in keys])
    election = voters["election_id"]
    return [
        BallotEnvelope.create(
            keys[i], chain_id=genesis.chain_id, election_id=election,
            proof=credentials.proof(keys[i].public_key), payload=bytes([choice(i) if choice else i % 3]),
        ).encode()
        for i in range(offset, offset + count)
    ]


@dataclass
class LoadResult:
    offered: int = 0
    accepted: int = 0
    refused: int = 0
    finalized: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    block_times_ms: list[int] = field(default_factory=list)
    refusal_codes: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        intervals = [b - a for a, b in itertools.pairwise(self.block_times_ms)]
        return {
            "offered": self.offered,
            "accepted": self.accepted,
            "refused": self.refused,
            "finalized": self.finalized,
            "seconds": round(self.seconds, 2),
            "finalized_ballots_per_s": round(self.finalized / self.seconds, 1) if self.seconds else 0.0,
            "p50_final_latency_s": round(lat[len(lat) // 2], 3) if lat else None,
            "p99_final_latency_s": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3) if lat else None,
            "block_interval_ms_median": statistics.median(intervals) if intervals else None,
            "refusal_codes": self.refusal_codes,
        }


async def run_load(
    urls: Sequence[str],
    ballots: Sequence[bytes],
    *,
    rate: float | None,
    batch: int = 200,
    drain_timeout: float = 30.0,
) -> LoadResult:
    """Offer ``ballots`` at ``rate``/s (None: as fast as the nodes take them)."""
    result = LoadResult()
    submitted: dict[bytes, float] = {}
    async with httpx.AsyncClient(timeout=60.0) as http:
        start_height = (await _call(http, urls[0], "ballot_status"))["height"]
        started = time.perf_counter()
        follower = asyncio.create_task(_follow(http, urls[0], start_height + 1, submitted, result, len(ballots)))
        node = itertools.cycle(urls)
        in_flight: set[asyncio.Task[None]] = set()
        for i in range(0, len(ballots), batch):
            chunk = ballots[i : i + batch]
            if rate is not None:
                due = started + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            task = asyncio.create_task(_submit(http, next(node), chunk, submitted, result))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if rate is None and len(in_flight) >= 2 * len(urls):
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        if in_flight:
            await asyncio.gather(*in_flight)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(follower, drain_timeout)
        result.seconds = time.perf_counter() - started
    return result


async def _call(http: httpx.AsyncClient, url: str, method: str, *params: Any) -> Any:
    response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    body = response.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


async def _submit(
    http: httpx.AsyncClient, url: str, chunk: Sequence[bytes], submitted: dict[bytes, float], result: LoadResult
) -> None:
    now = time.perf_counter()
    for raw in chunk:
        submitted[keccak256(raw)] = now
    result.offered += len(chunk)
    hexes = [raw.hex() for raw in chunk]
    for attempt in range(SUBMIT_ATTEMPTS):
        try:
            answers = await _call(http, url, "ballot_submitBatch", hexes)
            break
        except httpx.TransportError:  # e.g. a kept-alive connection the node closed as it was reused
            if attempt == SUBMIT_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.05)  # resubmitting is safe: the same ballot gets the same answer
    for answer in answers:
        if "error" in answer:
            result.refused += 1
            code = answer["error"]["code"]
            result.refusal_codes[code] = result.refusal_codes.get(code, 0) + 1
        else:
            result.accepted += 1


async def _follow(
    http: httpx.AsyncClient, url: str, height: int, submitted: dict[bytes, float], result: LoadResult, total: int
) -> None:
    while result.finalized + result.refused < total:
        page = await _call(http, url, "ballot_getBlocks", height, 50)
        now = time.perf_counter()
        for entry in page["blocks"]:
            block = Block.decode(bytes.fromhex(entry["block"]))
            result.block_times_ms.append(block.header.time_ms)
            for raw in block.ballots:
                sent = submitted.get(keccak256(raw))
                if sent is not None:
                    result.latencies.append(now - sent)
                    result.finalized += 1
            height += 1
        if not page["blocks"]:
            await asyncio.sleep(POLL_S)
