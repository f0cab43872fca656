"""The chain store's block files: segments, a crash's leftovers, damage, and the older
layout with blocks inside LevelDB."""

from __future__ import annotations

import struct
from pathlib import Path

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.blockfiles import BlockFiles, BlockLocation, segment_numbers
from ledger.chain import Chain
from ledger.errors import StoreCorrupt
from ledger.state import ChainTip
from ledger.store import LedgerStore
from ledger.store_check import check_stored_chain
from ledger.validators import ValidatorSchedule
from tests.helpers import certify, commit_blocks, kit, next_block

K = kit(1, 64)
_U64 = struct.Struct(">Q")


def _blocks(path: Path) -> list[bytes]:
    with LedgerStore(path, K.genesis) as store:
        return [store.raw_block(h) for h in range(1, store.height + 1)]


def _check(path: Path) -> int:
    with LedgerStore(path, K.genesis) as store:
        schedule = ValidatorSchedule(K.genesis.validators)
        return check_stored_chain(store, K.genesis, ChainTip.at_genesis(K.genesis), schedule).height


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=30), segment=st.integers(1, 1000))
def test_appends_read_back_across_segments_and_the_extent_is_what_they_fill(
        tmp_path_factory: pytest.TempPathFactory, data: list[bytes], segment: int) -> None:
    directory = tmp_path_factory.mktemp("files")
    files = BlockFiles(directory, segment_bytes=segment)
    files.open_at(None)
    locations = [files.append(d) for d in data]
    files.sync()
    for d, location in zip(data, locations, strict=True):
        assert files.read(location, "a block") == d
        assert location.length <= segment or location.offset == 0  # too big: a segment of its own
    extent = files.extent()
    assert [p.name for p, _ in extent] == [f"blocks-{n:06d}.dat" for n in range(locations[-1].segment + 1)]
    assert sum(size for _, size in extent) == sum(len(d) for d in data)
    files.close()


def test_segments_roll_over_and_reopen_whole(tmp_path: Path) -> None:
    with Chain(tmp_path / "db", K.genesis, segment_bytes=2_000) as chain:
        commit_blocks(K, chain, 12, 3)
        extent = chain.store.block_files()
    assert len(extent) >= 3 and all(size <= 2_000 for _, size in extent)
    assert [size for _, size in extent] == [path.stat().st_size for path, _ in extent]
    blocks = _blocks(tmp_path / "db")
    assert len(blocks) == 12 and sum(map(len, blocks)) == sum(size for _, size in extent)
    assert _check(tmp_path / "db") == 12
    # LevelDB holds locations only: no block is stored in it
    db = plyvel.DB(str(tmp_path / "db"))
    try:
        assert not list(db.iterator(prefix=b"b", include_value=False))
        assert len(list(db.iterator(prefix=b"f", include_value=False))) == 12
    finally:
        db.close()


def test_bytes_a_crash_left_after_the_tip_are_cut_off_and_the_chain_goes_on(tmp_path: Path) -> None:
    """A crash between a block's append and its batch leaves bytes (and even a new
    segment) that no location names: the next open cuts them off, and the blocks
    committed next land where they would have. Fails when the open keeps them (the
    next block's location would then be past them, and a backup would copy them)."""
    path = tmp_path / "db"
    with Chain(path, K.genesis, segment_bytes=2_000) as chain:
        commit_blocks(K, chain, 5, 3)
        extent = chain.store.block_files()
    last_path, last_size = extent[-1]
    with last_path.open("ab") as f:
        f.write(b"\xab" * 700)  # a torn append
    orphan = path / f"blocks-{len(extent):06d}.dat"
    orphan.write_bytes(b"\xcd" * 100)  # a segment created by the append that never committed
    with Chain(path, K.genesis, segment_bytes=2_000) as chain:
        assert chain.store.block_files() == extent
        assert last_path.stat().st_size == last_size and not orphan.exists()
        commit_blocks(K, chain, 3, 3, first_voter=30)
    assert len(_blocks(path)) == 8 and _check(path) == 8


def test_a_failed_batch_takes_its_append_back(tmp_path: Path) -> None:
    """The LevelDB batch of a commit fails after the block was appended and synced: the
    store stays at its tip, and the block committed next goes where the failed one went."""
    path = tmp_path / "db"
    with Chain(path, K.genesis) as chain:
        commit_blocks(K, chain, 2, 3)
        before = chain.store.block_files()
        block = next_block(K, chain.store.tip, [K.ballot(50, 1).encode()], chain.store.certificate(2))
        real = chain.store._db

        class Failing:
            def write_batch(self, **kwargs: object) -> object:
                raise plyvel.IOError(b"injected: the disk is full")

            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

        chain.store._db = Failing()
        with pytest.raises(plyvel.IOError):
            chain.commit(block, certify(K, block))
        chain.store._db = real
        assert chain.store.height == 2 and chain.store.block_files() == before
        assert before[-1][0].stat().st_size == before[-1][1]
        chain.commit(block, certify(K, block))
    assert _check(path) == 3


def test_a_missing_or_shortened_block_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Chain(path, K.genesis, segment_bytes=2_000) as chain:
        commit_blocks(K, chain, 8, 3)
        extent = chain.store.block_files()
    first, last = extent[0][0], extent[-1][0]
    whole = last.read_bytes()
    last.write_bytes(whole[:-1])
    with pytest.raises(StoreCorrupt, match=f"block file {last} is damaged.*bytes; the chain's blocks need"):
        LedgerStore(path, K.genesis)
    last.write_bytes(whole)
    first.unlink()
    with pytest.raises(StoreCorrupt, match="cannot read block 1 from"):
        LedgerStore(path, K.genesis)


def _to_older_layout(path: Path) -> None:
    """Rewrite a store as it was before block files: each block under ``b`` + height."""
    blocks = _blocks(path)
    db = plyvel.DB(str(path))
    with db.write_batch(sync=True) as wb:
        for height, raw in enumerate(blocks, start=1):
            wb.put(b"b" + _U64.pack(height), raw)
            wb.delete(b"f" + _U64.pack(height))
    db.close()
    for number in segment_numbers(path):
        (path / f"blocks-{number:06d}.dat").unlink()


def test_a_store_of_the_older_layout_reads_and_goes_on_in_block_files(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Chain(path, K.genesis) as chain:
        commit_blocks(K, chain, 4, 3)
    blocks = _blocks(path)
    _to_older_layout(path)
    assert _blocks(path) == blocks and _check(path) == 4
    with Chain(path, K.genesis) as chain:
        commit_blocks(K, chain, 2, 3, first_voter=20)
        assert chain.store.block_files()[0][1] == len(chain.store.raw_block(5)) + len(chain.store.raw_block(6))
    assert _blocks(path)[:4] == blocks and _check(path) == 6


def test_a_location_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(StoreCorrupt, match="the location of block 7 is 3 bytes"):
        BlockLocation.decode(b"abc", "block 7")
    location = BlockLocation(2, 10, 5, 99)
    assert BlockLocation.decode(location.encode(), "x") == location and location.end == 15
