"""eth_getLogs over a whole election's registry events, on a chain of N blocks.

    python scripts/bench/eth_logs.py [--quick] [--blocks N]

The chain: block 1 defines an election, block 2 opens it, blocks 3..N-2 hold its
ballots (1,000,000 in all, as counts in each block's checkpoint call: what the EVM and
the RPC see of ballots), block N-1 closes it and block N publishes its result. Every
block is executed by the engine (py-evm, state in LevelDB) as a validator executes it,
and committed, with a commit certificate, to a ledger store (LevelDB, one synced batch a
block, the transaction index in it); the RPC reads that store as the node does
(``node.rpc_table.HeaderSource``).

How many blocks a 1,000,000-ballot election spans: at least 250 (4,000 ballots a block,
every block full); at the 2,000 ballots/s four validators sustain (README, `network`)
with a block every ~0.3 s (the 250 ms block interval plus a round on loopback), the
ballots alone fill ~1,700 blocks; but validators make a block every interval whether or
not ballots come, so an election open for a day spans ~288,000 blocks whatever its
ballots. Full mode builds that day (288,000 blocks: 72 minutes of building on a shared 2-core machine);
``--quick`` builds 3,000.

The query is the one an indexer makes for an election: ``{address: registry, topics:
[null, election id], fromBlock: 0, toBlock: latest}`` over real HTTP (the node's own
RPC server and dispatcher). Cold: the first answer of a node just started (store and
state database opened again, nothing cached); ``cold_busy_answers`` counts ``busy``
answers (retried at once; none are expected now that no query builds an index); warm:
the median of five more. ``catch_up_s``: opening the same store with its transaction
index removed (as a store of the layout before the index is), which indexes every block
before the store answers. Last line: one JSON object.
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
from typing import Any

import httpx
import plyvel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, peak_rss_mib

from ballotledger.election_kit import make_election
from contracts import REGISTRY_ADDRESS, election_key, registry
from contracts.engine import CheckpointInput, EvmExecutor, LevelStateDB, sign_transaction
from ledger import store as ledger_store
from ledger.block import Block, BlockHeader, CommitCertificate, last_commit_hash, transactions_hash
from ledger.genesis import ElectionDef, Genesis
from ledger.hashing import keccak256
from ledger.merkle import MerkleFrontier
from ledger.rules import BlockEffects
from ledger.state import ChainTip
from ledger.store import LedgerStore
from node.eth_rpc import EthMethods
from node.rpc_server import RpcServer
from node.rpc_table import HeaderSource

BALLOTS = 1_000_000


def build(blocks: int, work: Path) -> tuple[Genesis, str, float]:
    kit = make_election(voters=1, seed="bench-eth-logs")
    g = kit.genesis
    executor = EvmExecutor(g, LevelStateDB.open(str(work / "state")))
    store = LedgerStore(work / "store", g, genesis_tip=ChainTip.at_genesis(g, executor))
    signers = list(enumerate(kit.validator_keys))
    reg = registry()
    election = ElectionDef(
        election_id="city-2027", question="Adopt the plan?", choices=("yes", "no"),
        credential_root=keccak256(b"roster"), credential_count=BALLOTS, opens_at_ms=g.genesis_time_ms,
        closes_at_ms=g.genesis_time_ms + 10 * 86_400_000, revoting="last-counts")
    eid = election.election_id
    calls = {1: reg.define_election(election), 2: reg.open_election(eid), blocks - 1: reg.close_election(eid),
             blocks: reg.publish_result(eid, [BALLOTS // 2, BALLOTS - BALLOTS // 2])}
    ballot_blocks = blocks - 4
    root, parent, time_ms, log_size, nonce = executor.genesis_state_root(), g.hash(), g.genesis_time_ms, 0, 0
    # The log's frontier is not what this measures: ballots are counts, not leaves.
    frontier = MerkleFrontier().to_bytes()
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
        block = Block(header, (), txs, None)
        certificate = CommitCertificate.create(signers, chain_id=g.chain_id, height=h, round_=0,
                                               block_hash=block.hash())
        tip = ChainTip(g.chain_id, h, block.hash(), time_ms, result.state_root, frontier)
        store.commit(block, certificate, BlockEffects(tip, (), 0, (), ()))
        root, parent = result.state_root, block.hash()
    assert log_size == BALLOTS
    store.close()
    executor.db.close()  # type: ignore[attr-defined]
    return g, eid, time.perf_counter() - started


def drop_tx_index(path: Path) -> None:
    """Leave the store as the layout before the transaction index left it."""
    db = plyvel.DB(str(path))
    with db.write_batch(transaction=True, sync=True) as wb:
        for prefix in (ledger_store._P_TX, ledger_store._P_TX_BLOCK):
            for key in db.iterator(prefix=prefix, include_value=False):
                wb.delete(key)
        wb.delete(ledger_store._K_TX_INDEXED)
    db.close()


def query(eid: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [{
        "address": "0x" + REGISTRY_ADDRESS.hex(), "topics": [None, "0x" + election_key(eid).hex()],
        "fromBlock": "0x0", "toBlock": "latest"}]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--blocks", type=int, default=None)
    args = ap.parse_args()
    blocks = args.blocks or (3_000 if args.quick else 288_000)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        g, eid, build_s = build(blocks, work)
        # A node just started: the store and the state database opened again, nothing cached.
        started = time.perf_counter()
        store = LedgerStore(work / "store", g)
        executor = EvmExecutor(g, LevelStateDB.open(str(work / "state")))
        open_s = time.perf_counter() - started
        methods = EthMethods(HeaderSource(store), executor, max_log_blocks=2_000)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        server = RpcServer(methods.table(), "127.0.0.1", port)
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        body = query(eid)
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
        loop.close()
        store.close()
        # The same store as the layout before the index left it: opening it catches up.
        drop_tx_index(work / "store")
        started = time.perf_counter()
        store = LedgerStore(work / "store", g)
        catch_up_s = time.perf_counter() - started
        caught_up = EthMethods(HeaderSource(store), executor, max_log_blocks=2_000)
        assert asyncio.run(caught_up.filters.get_logs(body["params"][0])) == logs
        store.close()
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
        "open_s": round(open_s, 3),
        "cold_s": round(cold_s, 3),
        "cold_busy_answers": busy,
        "warm_s_median": round(statistics.median(warm), 4),
        "catch_up_s": round(catch_up_s, 2),
        "catch_up_us_per_block": round(catch_up_s / blocks * 1e6, 1),
        "target_s": 1.0,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "peak_rss_mib": peak_rss_mib(),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: py-evm over a closed LevelDB state database prints an
    # empty "Error in sys.excepthook" while finalizing, after the figures' line.
    sys.stdout.flush()
    os._exit(0)
