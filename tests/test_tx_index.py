"""The transaction index the store keeps as blocks commit (:mod:`ledger.tx_index`).

``eth_getLogs`` and the transaction lookups read it; it must answer exactly as a scan of
every block does, whether it was written with each block, caught up when a store of an
older layout (or one missing entries) is opened, or left by a kill -9 at any instant.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballotledger.election_kit import make_election
from contracts import REGISTRY_ADDRESS, election_key, registry
from contracts.engine import EvmExecutor, memory_state_db, sign_transaction
from ledger import store as ledger_store
from ledger.assemble import assemble_block
from ledger.block import Block, CommitCertificate
from ledger.chain import Chain
from ledger.genesis import ChainParams, ElectionDef
from ledger.hashing import keccak256
from ledger.store import LedgerStore
from ledger.tx_index import presented_hashes, system_call_hash
from node.eth_filters import LogQuery
from node.eth_rpc import EthMethods
from node.rpc_table import HeaderSource
from tests.helpers import certify, kit, repeating_transactions, unchecked_block

K = make_election(voters=4, seed="tests-tx-index", params=ChainParams(contracts=True))
G = K.genesis
ENGINE = EvmExecutor(G, memory_state_db())  # state is content-addressed: every chain below shares it
REG = registry()
PLAIN = kit(1, 8).genesis  # for the store alone: no contracts
_U64 = struct.Struct(">Q")
_LOCATION = struct.Struct(">QQ")


def _definition(eid: str) -> ElectionDef:
    return ElectionDef(
        election_id=eid, question="Adopt the plan?", choices=("yes", "no"), credential_root=keccak256(b"roster"),
        credential_count=4, opens_at_ms=G.genesis_time_ms, closes_at_ms=G.genesis_time_ms + 86_400_000,
        revoting="last-counts")


ELECTIONS = ("e0", "e1", K.election_id)
# Registry calls in any order: most succeed in some order and revert in others (a revert
# is a transaction with a failed receipt and no logs, still in its block).
CALLS = (
    [REG.define_election(_definition(e)) for e in ELECTIONS[:2]]
    + [REG.open_election(e) for e in ELECTIONS]
    + [REG.close_election(e) for e in ELECTIONS]
    + [REG.publish_result(e, [1, 2]) for e in ELECTIONS[:2]]
)
TOPICS = (
    [event.topic for event in REG.events.values()]
    + [election_key(e) for e in ELECTIONS]
    + [h.to_bytes(32, "big") for h in range(4)]
)


class ContractChain:
    """A validator's chain with contracts, block by block: real rules, real LevelDB."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chain = Chain(path, G, ENGINE)
        self.nonce = 0
        self.last: CommitCertificate | None = None

    def add(self, calls: Sequence[bytes]) -> Block:
        txs = [sign_transaction(K.authority_key, chain_id=ENGINE.chain_id, nonce=self.nonce + i,
                                to=REGISTRY_ADDRESS, data=data) for i, data in enumerate(calls)]
        tip = self.chain.store.tip
        block = assemble_block(G, tip, [], time_ms=tip.time_ms + 1000, proposer=K.validator_keys[0].public_key,
                               last_commit=self.last, transactions=txs, engine=ENGINE)
        self.last = certify(K, block)
        self.chain.commit(block, self.last)
        self.nonce += len(txs)
        return block


def _finish(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """An EthMethods method run to its end (they never await)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("an Ethereum method awaited something")


def drop_index_above(path: Path, height: int, *, older_layout: bool = False) -> None:
    """Leave a closed store's index as a store indexed only to ``height`` leaves it (or,
    with ``older_layout``, as the layout before the index: no entries, no height)."""
    db = plyvel.DB(str(path))
    with db.write_batch(transaction=True, sync=True) as wb:
        for key, value in db.iterator(prefix=ledger_store._P_TX):
            if _LOCATION.unpack(value)[0] > height:
                wb.delete(key)
        for key in db.iterator(prefix=ledger_store._P_TX_BLOCK, include_value=False):
            if _U64.unpack(key[1:])[0] > height:
                wb.delete(key)
        if older_layout:
            wb.delete(ledger_store._K_TX_INDEXED)
        else:
            wb.put(ledger_store._K_TX_INDEXED, _U64.pack(height))
    db.close()


def indexed_height(path: Path) -> int | None:
    db = plyvel.DB(str(path))
    try:
        raw = db.get(ledger_store._K_TX_INDEXED)
        return None if raw is None else int(_U64.unpack(raw)[0])
    finally:
        db.close()


def scanned_index(store: LedgerStore) -> tuple[dict[bytes, tuple[int, int]], list[int]]:
    """The index built from scratch: every block read, in height order."""
    where: dict[bytes, tuple[int, int]] = {}
    with_txs: list[int] = []
    for h in range(1, store.height + 1):
        txs = store.block(h).transactions
        for position, tx_hash in enumerate(presented_hashes(store.genesis.chain_id, h, txs)):
            where[tx_hash] = (h, position)
        if txs:
            with_txs.append(h)
    return where, with_txs


def assert_index_is_a_full_scan(store: LedgerStore, ranges: int = 400) -> None:
    """Every hash is where a scan finds it, and every range (or, on a longer chain,
    ``ranges`` random ones and those at its ends) lists the blocks a scan lists."""
    where, with_txs = scanned_index(store)
    for tx_hash, location in where.items():
        assert store.transaction_location(tx_hash) == location
    assert store.transaction_location(keccak256(b"never sent")) is None
    top = store.height + 1
    if top * (top + 1) // 2 <= ranges:
        pairs = [(lo, hi) for lo in range(1, top + 1) for hi in range(lo - 1, top + 1)]
    else:
        rng = random.Random(store.height)
        pairs = [(1, top), (1, 1), (top, top), (top - 1, top)]
        for _ in range(ranges):
            lo = rng.randint(1, top)
            pairs.append((lo, rng.randint(lo - 1, top)))
    for lo, hi in pairs:
        expected = [h for h in with_txs if lo <= h <= hi]
        assert store.heights_with_transactions(lo, hi, len(expected) + 1) == expected
        if expected:
            assert store.heights_with_transactions(lo, hi, 1) == expected[:1]
    assert store.tx_indexed_height == store.height


def scanned_logs(methods: EthMethods, params: dict[str, Any]) -> list[dict[str, Any]]:
    """eth_getLogs by reading every block of the range, as before any index."""
    q = LogQuery.parse(params)
    lo, hi = int(params["fromBlock"], 16), min(int(params["toBlock"], 16), methods.head)
    return [log for h in range(lo, hi + 1) for log in methods.logs_at(h, q.keeps)]


def assert_queries_match_a_full_scan(store: LedgerStore, queries: Sequence[dict[str, Any]]) -> None:
    methods = EthMethods(HeaderSource(store), ENGINE)
    for params in queries:
        assert _finish(methods.filters.get_logs(params)) == scanned_logs(methods, params), params
    # every presented transaction (the genesis call's too) is found where a scan finds it
    where, _ = scanned_index(store)
    where[system_call_hash(G.chain_id, 0)] = (0, 0)
    for tx_hash, (h, position) in where.items():
        found = _finish(methods.get_transaction_by_hash("0x" + tx_hash.hex()))
        assert found == _finish(methods.get_transaction_by_block_number_and_index(hex(h), hex(position)))
        assert found["hash"] == "0x" + tx_hash.hex()
    assert _finish(methods.get_transaction_by_hash("0x" + keccak256(b"never sent").hex())) is None


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@st.composite
def log_queries(draw: st.DrawFn, head: int) -> dict[str, Any]:
    lo = draw(st.integers(0, head + 1))
    hi = draw(st.integers(lo, head + 2))
    params: dict[str, Any] = {"fromBlock": hex(lo), "toBlock": hex(hi)}
    address = draw(st.sampled_from([None, "registry", "both", "other"]))
    if address == "registry":
        params["address"] = _hex(REGISTRY_ADDRESS)
    elif address == "both":
        params["address"] = [_hex(REGISTRY_ADDRESS), _hex(b"\x01" * 20)]
    elif address == "other":
        params["address"] = _hex(b"\x01" * 20)
    topic = st.sampled_from(TOPICS).map(_hex)
    position = st.none() | topic | st.lists(topic, min_size=1, max_size=3)
    params["topics"] = draw(st.lists(position, max_size=3))
    return params


@settings(max_examples=15)
@given(
    blocks=st.lists(st.lists(st.sampled_from(CALLS), max_size=3), min_size=1, max_size=7),
    crash=st.integers(0, 7),
    older_layout=st.booleans(),
    data=st.data(),
)
def test_the_index_answers_every_log_query_as_a_full_scan_does(
    blocks: list[list[bytes]], crash: int, older_layout: bool, data: st.DataObject
) -> None:
    """Random blocks of registry transactions (defining, opening, closing, publishing, in
    any order, reverts included): every (fromBlock, toBlock, address, topics) query
    answers exactly as a scan of every block of its range, with the index written as the
    blocks committed, and again with the index lost above a random height (or wholly, as
    a store of the older layout) and caught up when the store is opened.
    Fails when the store's range read stops one height short (tried: ``stop`` at ``hi``)."""
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "db"
        chain = ContractChain(path)
        for calls in blocks:
            chain.add(calls)
        head = chain.chain.store.height
        queries = [data.draw(log_queries(head)) for _ in range(12)]
        assert_queries_match_a_full_scan(chain.chain.store, queries)
        chain.chain.close()
        crash = 0 if older_layout else min(crash, head)
        drop_index_above(path, crash, older_layout=older_layout)
        with LedgerStore(path, G) as store:
            assert_index_is_a_full_scan(store)
            assert_queries_match_a_full_scan(store, queries)


@pytest.fixture(scope="module")
def election_chain() -> Iterator[Path]:
    """One chain an indexer reads: an election defined, opened, closed and published
    among blocks without transactions."""
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "db"
        chain = ContractChain(path)
        plan = {2: [CALLS[0]], 3: [CALLS[2], CALLS[3]], 6: [CALLS[5]], 9: [CALLS[8], CALLS[1]]}
        for h in range(1, 11):
            chain.add(plan.get(h, []))
        chain.chain.close()
        yield path


ELECTION_QUERIES = [
    {"fromBlock": "0x0", "toBlock": "0x64"},
    {"fromBlock": "0x0", "toBlock": "0x64", "address": _hex(REGISTRY_ADDRESS),
     "topics": [None, _hex(election_key("e0"))]},
    {"fromBlock": "0x4", "toBlock": "0x9", "topics": [_hex(REG.events["PhaseChanged"].topic)]},
    {"fromBlock": "0x0", "toBlock": "0x2", "topics": [[_hex(REG.events["ElectionDefined"].topic)]]},
]


@pytest.mark.parametrize("older_layout", [False, True])
def test_a_store_missing_index_entries_catches_up_when_opened(
    election_chain: Path, older_layout: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The index lost above block 4 (or wholly: a store of the layout before the index),
    as a writer killed between a block's commit and its index would leave it: opening
    the store catches it up, logged, in batches that each keep their progress, and every
    query answers what a from-scratch build answers.
    Fails when the store does not catch up when opened (tried: the call removed; the
    index stops at block 4 and the hashes of block 5 on are not found)."""
    with LedgerStore(election_chain, G) as store:
        before = EthMethods(HeaderSource(store), ENGINE)
        expected = [_finish(before.filters.get_logs(q)) for q in ELECTION_QUERIES]
        assert any(int(log["blockNumber"], 16) == 9 for log in expected[1])
    drop_index_above(election_chain, 0 if older_layout else 4, older_layout=older_layout)
    caplog.set_level(logging.INFO, logger="ledger.store")
    batch = ledger_store.TX_INDEX_BATCH_BLOCKS
    ledger_store.TX_INDEX_BATCH_BLOCKS = 3
    try:
        with LedgerStore(election_chain, G) as store:
            assert store.tx_indexed_height == store.height == 10
            assert_index_is_a_full_scan(store)
            methods = EthMethods(HeaderSource(store), ENGINE)
            assert [_finish(methods.filters.get_logs(q)) for q in ELECTION_QUERIES] == expected
            assert_queries_match_a_full_scan(store, ELECTION_QUERIES)
    finally:
        ledger_store.TX_INDEX_BATCH_BLOCKS = batch
    first = 1 if older_layout else 5
    messages = [r.getMessage() for r in caplog.records if r.name == "ledger.store"]
    assert messages[0] == (
        f"transaction index lacks blocks {first} to 10 (a store of an older layout): indexing them now")
    progress = [m for m in messages if m.startswith("transaction index at block")]
    assert progress == [f"transaction index at block {h} of 10" for h in range(first + 2, 11, 3)] + (
        [] if (10 - first + 1) % 3 == 0 else ["transaction index at block 10 of 10"])
    assert messages[-1].startswith(f"transaction index caught up: {10 - first + 1} blocks in ")
    caplog.clear()
    LedgerStore(election_chain, G).close()  # caught up: nothing to do, nothing logged
    assert not [r for r in caplog.records if r.name == "ledger.store"]


# --- kill -9 --------------------------------------------------------------------------------
KILLED = textwrap.dedent(
    """
    import sys
    from ledger import store as ledger_store
    from tests.helpers import kit, repeating_transactions, unchecked_block
    PLAIN = kit(1, 8).genesis
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "catch-up":
        ledger_store.TX_INDEX_BATCH_BLOCKS = 3
        print("opening", flush=True)
        ledger_store.LedgerStore(path, PLAIN)
        print("caught up", flush=True)
        sys.exit(0)
    store = ledger_store.LedgerStore(path, PLAIN)
    print(store.height, flush=True)
    while True:
        store.commit(*unchecked_block(PLAIN, store.tip, repeating_transactions(store.height + 1)))
    """
)


def _run_and_kill(rng: random.Random, mode: str, path: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, mode, str(path)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    proc.stdout.readline()  # opened
    time.sleep(rng.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.stdout.read().decode()


def test_the_index_survives_kill_9_while_committing_and_while_catching_up(tmp_path: Path) -> None:
    """A writer committing blocks, and a store catching its index up in batches of 7
    blocks, are SIGKILLed at random instants: the index is never ahead of its entries,
    and once the store is opened again it answers exactly as a from-scratch scan.
    Fails when a catch-up batch writes its height before its entries, in a write of its
    own, and when a commit writes the index in a batch after the block's (tried each:
    3 runs of 3 failed)."""
    rng = random.Random(16)
    path = tmp_path / "db"
    rounds = int(os.environ.get("CRASH_ROUNDS", "4"))
    for _ in range(rounds):
        _run_and_kill(rng, "commit", path)
        assert indexed_height(path) is not None
        with LedgerStore(path, PLAIN) as store:
            assert store.height >= 1
            assert_index_is_a_full_scan(store)
    for _ in range(2 * rounds):
        drop_index_above(path, rng.randrange(0, 40), older_layout=False)
        if "caught up" in _run_and_kill(rng, "catch-up", path):
            continue  # finished before the kill: nothing left to test this round
        with LedgerStore(path, PLAIN) as store:
            assert_index_is_a_full_scan(store)


def test_a_transaction_index_height_is_kept_in_the_blocks_own_batch(tmp_path: Path) -> None:
    """After each commit the stored index height is the tip's: nothing is left for a later
    write that a crash could skip."""
    with LedgerStore(tmp_path / "db", PLAIN) as store:
        for h in range(1, 8):
            store.commit(*unchecked_block(PLAIN, store.tip, repeating_transactions(h)))
            assert store._db.get(ledger_store._K_TX_INDEXED) == _U64.pack(h)
        assert_index_is_a_full_scan(store)
        assert store.transaction_location(keccak256(b"repeated")) == (5, len(repeating_transactions(5)) - 1)
