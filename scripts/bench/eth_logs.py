"""eth_getLogs over a whole election's registry events, on a chain of N blocks.

    python scripts/bench/eth_logs.py [--quick] [--blocks N]

The chain: block 1 defines an election, block 2 opens it, blocks 3..N-2 hold its
ballots (1,000,000 in all, as counts in each block's checkpoint call: what the EVM and
the RPC see of ballots), block N-1 closes it and block N publishes its result. Every
block is executed by the engine (py-evm, state in LevelDB) as a validator executes it;
its header is kept encoded and decoded on every read, as the node's header source does
(the LevelDB read of the header itself is left out).

How many blocks a 1,000,000-ballot election spans: at least 250 (4,000 ballots a block,
every block full); at the 2,000 ballots/s four validators sustain (README, `network`)
with a block every ~0.3 s (the 250 ms block interval plus a round on loopback), the
ballots alone fill ~1,700 blocks; but validators make a block every interval whether or
not ballots come, so an election open for a day spans ~288,000 blocks whatever its
ballots. Full mode builds that day (288,000 blocks, about 15-25 minutes of building);
``--quick`` builds 3,000.

The query is the one an indexer makes for an election: ``{address: registry, topics:
[null, election id], fromBlock: 0, toBlock: latest}`` over real HTTP (the node's own
RPC server and dispatcher). Cold: the first answer, including building the transaction
index over every header (a node builds it at most 20,000 blocks a call, answering
``busy`` meanwhile: those answers are counted and retried at once); warm: the median of
five more; ``index_us_per_block``: the index alone, per block (what a cold answer on a
longer chain costs per block it has). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, peak_rss_mib

from ballotledger.election_kit import make_election
from contracts import REGISTRY_ADDRESS, election_key, registry
from contracts.engine import CheckpointInput, EvmExecutor, LevelStateDB, sign_transaction
from ledger import codec
from ledger.block import Block, BlockHeader, last_commit_hash, transactions_hash
from ledger.genesis import ElectionDef
from ledger.hashing import keccak256
from node.eth_rpc import EthMethods
from node.rpc_server import RpcServer

BALLOTS = 1_000_000


class EncodedChain:
    """A node.eth_rpc.BlockSource over headers kept encoded (decoded at every read)."""

    def __init__(self) -> None:
        self.headers: list[bytes] = []
        self.txs: dict[int, tuple[bytes, ...]] = {}
        self.by_hash: dict[bytes, int] = {}

    @property
    def height(self) -> int:
        return len(self.headers)

    def header(self, height: int) -> BlockHeader:
        return BlockHeader.decode(self.headers[height - 1])

    def block(self, height: int) -> Block:
        return Block(self.header(height), (), self.txs.get(height, ()), None)

    def height_of(self, block_hash: bytes) -> int | None:
        return self.by_hash.get(block_hash)

    def txs_hash(self, height: int) -> bytes:
        """As the node's header source reads it: the header's RLP, field 9, nothing else."""
        return codec.as_bytes(codec.as_list(codec.decode(self.headers[height - 1]), 11, "header")[9], "txs hash")


def build(blocks: int, state_dir: Path) -> tuple[EncodedChain, EvmExecutor, str, float]:
    kit = make_election(voters=1, seed="bench-eth-logs")
    g = kit.genesis
    executor = EvmExecutor(g, LevelStateDB.open(str(state_dir)))
    reg = registry()
    election = ElectionDef(
        election_id="city-2027", question="Adopt the plan?", choices=("yes", "no"),
        credential_root=keccak256(b"roster"), credential_count=BALLOTS, opens_at_ms=g.genesis_time_ms,
        closes_at_ms=g.genesis_time_ms + 10 * 86_400_000, revoting="last-counts")
    eid = election.election_id
    calls = {1: reg.define_election(election), 2: reg.open_election(eid), blocks - 1: reg.close_election(eid),
             blocks: reg.publish_result(eid, [BALLOTS // 2, BALLOTS - BALLOTS // 2])}
    ballot_blocks = blocks - 4
    chain = EncodedChain()
    root, parent, time_ms, log_size, nonce = executor.genesis_state_root(), g.hash(), g.genesis_time_ms, 0, 0
    started = time.perf_counter()
    for h in range(1, blocks + 1):
        time_ms += 300
        txs: tuple[bytes, ...] = ()
        ballots: tuple[tuple[str, int], ...] = ()
        if h in calls:
            txs = (sign_transaction(kit.authority_key, chain_id=executor.chain_id, nonce=nonce, to=REGISTRY_ADDRESS,
                                    data=calls[h], gas=5_000_000),)
            nonce += 1
        else:
            n = BALLOTS // ballot_blocks + (1 if h - 3 < BALLOTS % ballot_blocks else 0)
            log_size += n
            ballots = ((eid, n),)
        log_root = keccak256(log_size.to_bytes(8, "big"))
        result = executor.execute_block(root, h, time_ms, list(txs), CheckpointInput(log_size, log_root, ballots))
        header = BlockHeader(
            chain_id=g.chain_id, height=h, time_ms=time_ms, parent_hash=parent,
            proposer=g.validators.validators[0].public_key, validator_set_hash=g.validators.hash(),
            log_size=log_size, log_root=log_root, state_root=result.state_root, txs_hash=transactions_hash(list(txs)),
            last_commit_hash=last_commit_hash(None))
        chain.headers.append(header.encode())
        if txs:
            chain.txs[h] = txs
        root, parent = result.state_root, header.hash()
        chain.by_hash[parent] = h
    assert log_size == BALLOTS
    return chain, executor, eid, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--blocks", type=int, default=None)
    args = ap.parse_args()
    blocks = args.blocks or (3_000 if args.quick else 288_000)
    with tempfile.TemporaryDirectory() as tmp:
        chain, executor, eid, build_s = build(blocks, Path(tmp) / "state")
        methods = EthMethods(chain, executor, max_log_blocks=2_000)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        server = RpcServer(methods.table(), "127.0.0.1", port)
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        query = {"address": "0x" + REGISTRY_ADDRESS.hex(), "topics": [None, "0x" + election_key(eid).hex()],
                 "fromBlock": "0x0", "toBlock": "latest"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [query]}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            busy = 0
            started = time.perf_counter()
            while True:
                answer = client.post("/", json=body).json()
                if "error" in answer and answer["error"].get("data", {}).get("code") == "busy":
                    busy += 1
                    continue
                break
            cold_s = time.perf_counter() - started
            assert "result" in answer, answer
            logs = answer["result"]
            warm = []
            for _ in range(5):
                started = time.perf_counter()
                again = client.post("/", json=body).json()
                warm.append(time.perf_counter() - started)
                assert again["result"] == logs
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        # what the cold answer spends on the transaction index alone, per block
        fresh = EthMethods(chain, executor)
        started = time.perf_counter()
        while fresh._indexed_to < chain.height:
            fresh._index()
        index_us = (time.perf_counter() - started) / chain.height * 1e6
        loop.close()
        executor.db.close()  # type: ignore[attr-defined]
    events = [registry().decode_log(tuple(bytes.fromhex(t[2:]) for t in log["topics"]),
                                    bytes.fromhex(log["data"][2:])) for log in logs]
    emit({
        "benchmark": "eth_logs",
        "quick": args.quick,
        "blocks": blocks,
        "ballots": BALLOTS,
        "build_s": round(build_s, 1),
        "events": [e[0] for e in events if e is not None],
        "cold_s": round(cold_s, 3),
        "cold_busy_answers": busy,
        "warm_s_median": round(statistics.median(warm), 4),
        "index_us_per_block": round(index_us, 1),
        "target_s": 1.0,
        "peak_rss_mib": peak_rss_mib(),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: py-evm over a closed LevelDB state database prints an
    # empty "Error in sys.excepthook" while finalizing, after the figures' line.
    sys.stdout.flush()
    os._exit(0)
