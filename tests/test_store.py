"""The LevelDB store: identity checks at open, proofs at any size, and crash safety."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.chain import Chain
from ledger.errors import BadTreeRange, NotAStore, StoreChainMismatch, StoreCorrupt
from ledger.hashing import keccak256
from ledger.store import LedgerStore
from tests.helpers import certify, commit_blocks, kit, next_block

K = kit(1, 64)


def test_reopen_keeps_everything_and_serves_proofs_for_every_index_and_size(tmp_path: Path) -> None:
    with Chain(tmp_path / "db", K.genesis) as chain:
        codes = commit_blocks(K, chain, 7, 5)
    with LedgerStore(tmp_path / "db", K.genesis) as store:
        assert store.height == 7 and store.log_size == 35
        for size in range(1, 36):
            assert store.log_root(size) == merkle.root(codes[:size])
            for index in range(size):
                assert store.inclusion_proof(index, size) == merkle.inclusion_proof(codes[:size], index)
            for old in range(size + 1):
                assert store.consistency_proof(old, size) == merkle.consistency_proof(codes[:size], old)
        with pytest.raises(BadTreeRange):
            store.inclusion_proof(0, 36)
        # the canonical certificate of block h-1 is the one block h embeds
        assert store.certificate(6) == store.block(7).last_commit
        assert store.checkpoint().header == store.header(7)
        assert store.height_of(store.block(3).hash()) == 3


def test_a_ballot_is_recorded_only_once_its_block_is_the_published_tip(tmp_path: Path) -> None:
    """A reader on another thread (the RPC's read worker) may see a block's batch in
    LevelDB before ``commit`` publishes the new tip; a receipt made then would name a
    checkpoint whose log does not hold the ballot ("leaf index 7 is outside a tree of
    size 7", seen on a quiet chain). Fails when ``ballot_position`` ignores the tip."""
    with Chain(tmp_path / "db", K.genesis) as chain:
        codes = commit_blocks(K, chain, 2, 3)
        store = chain.store
        published = store.tip
        store._tip = dataclasses.replace(published, height=1)  # the instant before publication
        assert store.ballot_position(codes[0]) == (0, 1)
        assert store.ballot_position(codes[3]) is None
        store._tip = published
        assert store.ballot_position(codes[3]) == (3, 2)


def test_open_refuses_foreign_directories(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAStore, match="is a file"):
        LedgerStore(tmp_path / "file", K.genesis)
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello")
    with pytest.raises(NotAStore, match="not a LevelDB"):
        LedgerStore(tmp_path / "stuff", K.genesis)
    db = plyvel.DB(str(tmp_path / "other"), create_if_missing=True)
    db.put(b"k", b"v")
    db.close()
    with pytest.raises(NotAStore, match="not a ballot-ledger store"):
        LedgerStore(tmp_path / "other", K.genesis)
    LedgerStore(tmp_path / "mine", K.genesis).close()
    other = kit(1, 8).genesis
    with pytest.raises(StoreChainMismatch, match="another genesis"):
        LedgerStore(tmp_path / "mine", other)


def test_a_store_another_process_holds_is_refused_in_one_line(tmp_path: Path) -> None:
    """Two validators pointed at one data directory: the second is refused (NotAStore),
    not left with a plyvel error to print as a traceback."""
    with LedgerStore(tmp_path / "db", K.genesis), pytest.raises(NotAStore, match="could not be opened"):
        LedgerStore(tmp_path / "db", K.genesis)


def _contents(path: Path) -> tuple[int, list[bytes]]:
    with LedgerStore(path, K.genesis) as store:
        return store.height, [store.raw_block(h) + store.raw_certificate(h) for h in range(1, store.height + 1)]


class Source:
    """A closed store whose older blocks sit in a table file and newer ones in its log,
    and what it holds (height, each block and certificate)."""

    def __init__(self, path: Path, contents: tuple[int, list[bytes]]) -> None:
        self.path, self.contents = path, contents

    def __repr__(self) -> str:
        return f"Source({self.path})"

    def copy(self, to: Path) -> Path:
        shutil.copytree(self.path, to)
        return to


@pytest.fixture(scope="module")
def damaged_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = tmp_path_factory.mktemp("damaged") / "db"
    with Chain(path, K.genesis) as chain:
        commit_blocks(K, chain, 6, 4)
    LedgerStore(path, K.genesis).close()  # opening turns the log into a table
    with Chain(path, K.genesis) as chain:
        commit_blocks(K, chain, 3, 4, first_voter=40)
    scratch = tmp_path_factory.mktemp("scratch") / "db"
    shutil.copytree(path, scratch)  # reading the store also rewrites its files
    return Source(path, _contents(scratch))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["ldb", "log", "dat"]), where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_a_damaged_store_is_refused_or_unchanged_never_different(
    damaged_source: Source, tmp_path_factory: pytest.TempPathFactory, kind: str, where: float, mask: int
) -> None:
    """One byte changed anywhere in the table, the log or the block file: opening refuses
    the store (StoreCorrupt, saying it is damaged), or the byte was one LevelDB never
    reads (block padding) and the store holds exactly what it held. Fails when the store is opened
    as LevelDB opens by default (tried: without ``paranoid_checks`` a damaged log record
    is dropped and the store opens three blocks short; without the checksummed scan a
    damaged table block opens, to be refused only when a read reaches it)."""
    path = damaged_source.copy(tmp_path_factory.mktemp("copy") / "db")
    targets = sorted(path.glob(f"*.{kind}"))
    assert len(targets) == 1, sorted(p.name for p in path.iterdir())
    target = targets[0]
    data = bytearray(target.read_bytes())
    data[int(where * len(data))] ^= mask
    target.write_bytes(bytes(data))
    try:
        store = LedgerStore(path, K.genesis)
    except StoreCorrupt as exc:
        assert "damaged" in str(exc) and str(path) in str(exc)
        return
    store.close()
    reopened = _contents(path)  # opened: every read must then give what was written
    assert reopened == damaged_source.contents


def test_a_log_cut_short_by_a_crash_opens_at_the_last_whole_commit(damaged_source: Source, tmp_path: Path) -> None:
    """A write torn at the end of the log (a crash, a full disk) is not damage: the store
    opens at its last complete block."""
    height, blocks = damaged_source.contents
    path = damaged_source.copy(tmp_path / "db")
    (log,) = path.glob("*.log")
    log.write_bytes(log.read_bytes()[:-100])
    reopened_height, reopened = _contents(path)
    assert reopened_height == height - 1 and reopened == blocks[:-1]


WRITER = textwrap.dedent(
    """
    import sys
    from ledger.chain import Chain
    from tests.helpers import certify, commit_blocks, kit, next_block
    K = kit(1, 64)
    chain = Chain(sys.argv[1], K.genesis)
    last = chain.store.certificate(chain.store.height) if chain.store.height else None
    while True:
        h = chain.store.height
        block = next_block(K, chain.store.tip, [], last)
        last = certify(K, block)
        chain.commit(block, last)
        print(h + 1, flush=True)
    """
)


def test_kill_9_mid_commit_leaves_exactly_the_last_committed_block(tmp_path: Path) -> None:
    """A writer is SIGKILLed at random instants; every reopen sees a whole chain."""
    rng = random.Random(7)
    db = tmp_path / "db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    rounds = int(os.environ.get("CRASH_ROUNDS", "6"))
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        acknowledged = int(proc.stdout.readline())  # at least one commit this round
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for line in proc.stdout.read().split():
            acknowledged = int(line)
        with Chain(db, K.genesis) as chain:
            store = chain.store
            # Nothing acknowledged is lost; at most the in-flight block may have landed.
            assert acknowledged <= store.height <= acknowledged + 1
            tip_block = store.block(store.height)
            assert tip_block.hash() == store.tip.block_hash
            store.certificate(store.height).check(
                K.genesis.validators, chain_id=K.genesis.chain_id, height=store.height, block_hash=tip_block.hash()
            )
            assert store._db.get(b"f" + (store.height + 1).to_bytes(8, "big")) is None
            # bytes a killed append left after the tip's block are cut off at the open
            assert [(p.name, p.stat().st_size) for p, _ in store.block_files()] == [
                (p.name, size) for p, size in store.block_files()]
            for h in range(2, store.height + 1):
                assert store.block(h).header.parent_hash == store.block(h - 1).hash()


class _SecondWriteFails:
    """The store's database, except that every write after the first one fails, as a disk
    that fills up between two writes would."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db, self.writes = db, 0

    def _write(self) -> None:
        self.writes += 1
        if self.writes > 1:
            raise plyvel.IOError(b"injected: the second write of a commit fails")

    def write_batch(self, **kwargs: object) -> object:
        self._write()
        return self._db.write_batch(**kwargs)

    def put(self, *args: object, **kwargs: object) -> None:
        self._write()
        self._db.put(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> None:
        self._write()
        self._db.delete(*args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def test_a_block_commit_is_one_batch_a_failed_second_write_leaves_nothing_above_the_tip(tmp_path: Path) -> None:
    """Deterministic beside the kill test: the store's second write during a block's commit
    fails. Reopened, the store must be whole: either the block is there with all of its
    entries, or nothing of it is (no block, certificate index, tracking code or counted
    ballot above the tip). One synced batch per commit passes; any split fails every time.

    Fails when LedgerStore.commit writes the tip and the counted ballots in a second
    synced batch (tried by hand: reopened, block 3 is stored under a tip at 2)."""
    db = tmp_path / "db"
    election = K.genesis.elections[0].election_id
    voters = range(40, 43)
    ballots = [K.ballot(v, v % 3).encode() for v in voters]
    with Chain(db, K.genesis) as chain:
        commit_blocks(K, chain, 2, 3)
        block = next_block(K, chain.store.tip, ballots, chain.store.certificate(2))
        spy = _SecondWriteFails(chain.store._db)
        chain.store._db = spy
        with contextlib.suppress(plyvel.IOError):
            chain.commit(block, certify(K, block))
        chain.store._db = spy._db
    with Chain(db, K.genesis) as chain:
        store = chain.store
        assert store.height in (2, 3)
        landed = store.height == 3
        assert (store._db.get(b"f" + (3).to_bytes(8, "big")) is not None) == landed
        assert (store.height_of(block.hash()) == 3) == landed
        assert [store.has_ballot(keccak256(b)) for b in ballots] == [landed] * 3
        counted = [store.counted_ballot(election, K.ballot(v, 0).credential) for v in voters]
        assert counted == ([keccak256(b) for b in ballots] if landed else [None] * 3)
        if landed:
            assert store.block(3).hash() == block.hash() == store.tip.block_hash
    assert spy.writes == 1  # and the whole block went down in that one write
