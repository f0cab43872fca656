"""The worst JSON-RPC load one unauthenticated client can put on validators: for the
fault test that holds finality under it and for ``scripts/bench/rpc_load.py``.

One client address (``local_address``, e.g. 127.0.0.2 on loopback) opens
``connections`` connections to each target and cycles through the costliest requests
it can make, each as large as the node will take it: full-budget batches of results at
alternating heights (the batch that once stalled consensus), of block and tracking-code
pages, proofs and receipts; eth_call into the bn256 pairing precompile and into the
registry with unbounded gas; eth_getLogs over the widest range allowed; full blocks by
number; 2,500 ballots with broken signatures (a ~4 MB body; each ballot costs a
signature check); bodies with as many JSON values as allowed, and with more;
over-budget batches. Answers are read and counted by JSON-RPC error code, never
checked: the point is the load.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contracts import REGISTRY_ADDRESS

ROOT = Path(__file__).resolve().parent.parent
PAIRING_INPUT = (
    # (G1 generator, G2 generator) repeated: valid points, so py_ecc computes every pairing
    "0000000000000000000000000000000000000000000000000000000000000001"
    "0000000000000000000000000000000000000000000000000000000000000002"
    "198e9393920d483a7260bfb731fb5d25f1aa493335a9e71297e485b7aef312c2"
    "1800deef121f1e76426a00665e5c4479674322d4f75edadd46debd5cd992f6ed"
    "090689d0585ff075ec9e99ad690c3395bc4b313370b38ef355acdadcd122975b"
    "12c85ea5db8c6deb4aab71808dcb408fe3d1e7690c43d37b4ce6cc0166fa7daa"
)
REGISTRY = "0x" + REGISTRY_ADDRESS.hex()


@dataclass
class AttackStats:
    requests: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # "ok", an error code, or "http NNN"
    transport_errors: int = 0
    seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "answers": dict(sorted(self.answers.items())),
            "transport_errors": self.transport_errors,
        }


def _call(method: str, *params: Any, id_: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}


def _broken(ballot: bytes, i: int) -> bytes:
    """The ballot with one byte of its signature's r changed: well formed, refused only
    once its signature has been checked."""
    raw = bytearray(ballot)
    raw[-40] ^= (i % 255) + 1
    return bytes(raw)


def attack_bodies(tip: int, log_size: int, ballots: Sequence[bytes], codes: Sequence[str]) -> list[bytes]:
    """The request bodies, built once (the client's own CPU is better spent sending)."""
    rng = random.Random(13)
    tip = max(tip, 1)
    size = max(log_size, 1)
    bodies: list[Any] = [
        [_call("ballot_getResults", 1 if i % 2 else tip, id_=i) for i in range(200)],
        [_call("ballot_getBlocks", 1 + i, 500, id_=i) for i in range(5)],
        [_call("ballot_getTrackingCodes", 1 + i, 500, id_=i) for i in range(10)],
        [_call("ballot_getInclusionProof", rng.randrange(size), size, id_=i) for i in range(500)],
        [_call("ballot_getConsistencyProof", rng.randrange(1, size + 1), size, id_=i) for i in range(500)],
        [_call("ballot_getReceipt", codes[i % len(codes)] if codes else "00" * 32, id_=i) for i in range(200)],
        _call("eth_call", {"to": "0x" + "00" * 19 + "08", "data": "0x" + PAIRING_INPUT * 140,
                           "gas": hex(2**63)}, "latest"),
        [_call("eth_call", {"to": REGISTRY, "data": "0x" + "ab" * 4 + "00" * 64, "gas": hex(2**63)},
               "latest", id_=i) for i in range(10)],
        [_call("eth_estimateGas", {"to": REGISTRY, "data": "0x" + "cd" * 4}, id_=i) for i in range(10)],
        [_call("eth_getLogs", {"fromBlock": hex(max(0, tip - 1999)), "toBlock": "latest"}, id_=i) for i in range(5)],
        [_call("eth_getBlockByNumber", hex(1 + i % tip), True, id_=i) for i in range(50)],
        [_call("ballot_getBlocks", 1, 500, id_=i) for i in range(1000)],  # over budget
        _call("ballot_getResults", [0.5] * 19_900),  # as many values as a body may hold
        _call("ballot_getResults", [0] * 200_000),  # more: refused unparsed
    ]
    if ballots:
        bodies.append(_call("ballot_submitBatch", [_broken(ballots[i % len(ballots)], i).hex() for i in range(2500)]))
    return [json.dumps(b, separators=(",", ":")).encode() for b in bodies]


def _tally(stats: AttackStats, response: httpx.Response) -> None:
    if response.status_code != 200:
        stats.answers[f"http {response.status_code}"] += 1
        return
    try:
        body = response.json()
    except ValueError:
        stats.answers["not json"] += 1
        return
    for answer in body if isinstance(body, list) else [body]:
        error = answer.get("error") if isinstance(answer, dict) else None
        result = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(result, list) and result and isinstance(result[0], dict) and "error" in result[0]:
            stats.answers[str(result[0]["error"].get("code"))] += 1  # a refused submitted batch
        elif error is None:
            stats.answers["ok"] += 1
        else:
            data = error.get("data")
            code = data.get("code") if isinstance(data, dict) else None
            stats.answers[str(code or error.get("code"))] += 1


async def hammer(
    urls: Sequence[str],
    bodies: Sequence[bytes],
    *,
    seconds: float,
    connections: int = 32,
    local_address: str | None = "127.0.0.2",
) -> AttackStats:
    """Send ``bodies`` round and round to every URL over ``connections`` connections
    each, from one client address, for ``seconds``."""
    stats = AttackStats()
    deadline = time.monotonic() + seconds
    transport = httpx.AsyncHTTPTransport(local_address=local_address) if local_address else None
    limits = httpx.Limits(max_connections=connections * len(urls), max_keepalive_connections=connections * len(urls))
    headers = {"content-type": "application/json"}

    async def worker(http: httpx.AsyncClient, url: str, start: int) -> None:
        for body in itertools.islice(itertools.cycle(bodies), start, None):
            if time.monotonic() >= deadline:
                return
            stats.requests += 1
            try:
                response = await http.post(url, content=body, headers=headers,
                                           timeout=max(0.1, deadline - time.monotonic()))
            except httpx.HTTPError:
                stats.transport_errors += 1
                await asyncio.sleep(0.01)
                continue
            _tally(stats, response)

    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, limits=limits) as http:
        await asyncio.gather(*(worker(http, url, i) for url in urls for i in range(connections)))
    stats.seconds = time.monotonic() - started
    return stats



def start_attack(
    urls: Sequence[str], bodies: Sequence[bytes], seconds: float, *, workdir: Path, connections: int = 32,
    local_address: str = "127.0.0.2", nice: int = 10,
) -> subprocess.Popen[bytes]:
    """:func:`hammer` in a process of its own, so that its CPU does not slow the process
    that measures, at ``nice`` (on loopback the attacker's cycles are the validators';
    in deployment it has a machine of its own). :func:`attack_result` collects it."""
    bodies_file = workdir / "attack-bodies.jsonl"
    bodies_file.write_bytes(b"\n".join(bodies) + b"\n")
    spec = {"urls": list(urls), "seconds": seconds, "connections": connections, "local_address": local_address,
            "nice": nice, "bodies": str(bodies_file)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "ballotledger.rpc_attack", json.dumps(spec)],
                            stdout=subprocess.PIPE, env=env, cwd=str(ROOT))


def attack_result(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the attacking process exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def main(argv: Sequence[str]) -> None:
    spec = json.loads(argv[0])
    if spec["nice"]:
        os.nice(spec["nice"])
    bodies = Path(spec["bodies"]).read_bytes().splitlines()
    stats = asyncio.run(hammer(spec["urls"], bodies, seconds=spec["seconds"], connections=spec["connections"],
                               local_address=spec["local_address"]))
    print(json.dumps(stats.figures()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
