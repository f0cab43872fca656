"""Checking a stored chain without replaying it (what a restored backup must pass)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import plyvel
import pytest

from ledger.block import Block, CommitCertificate, CommitSignature
from ledger.chain import Chain
from ledger.errors import StoreCorrupt
from ledger.state import ChainTip
from ledger.store import LedgerStore
from ledger.store_check import check_stored_chain
from ledger.validators import ValidatorSchedule
from tests.helpers import commit_blocks, forge_stored_block, kit

K = kit(4, 64)
BLOCKS, PER_BLOCK = 5, 6


def _chain(path: Path) -> list[bytes]:
    with Chain(path, K.genesis) as chain:
        return commit_blocks(K, chain, BLOCKS, PER_BLOCK)


def _check(path: Path) -> ChainTip:
    with LedgerStore(path, K.genesis) as store:
        schedule = ValidatorSchedule(K.genesis.validators)
        return check_stored_chain(store, K.genesis, ChainTip.at_genesis(K.genesis), schedule)


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + struct.pack(">Q", height)  # ledger.store's layout


def _rewrite(path: Path, key: bytes, change: Callable[[bytes], bytes]) -> None:
    """Change a stored certificate (in LevelDB) or block (in its block file, its CRC made
    to match: see ``forge_stored_block``)."""
    if key[:1] == b"b":
        forge_stored_block(path, struct.unpack(">Q", key[1:])[0], change)
        return
    db = plyvel.DB(str(path))
    db.put(key, change(db.get(key)))
    db.close()


def _swap_ballots(raw: bytes) -> bytes:
    block = Block.decode(raw)
    ballots = (block.ballots[1], block.ballots[0], *block.ballots[2:])
    return Block(block.header, ballots, block.transactions, block.last_commit).encode()


def _one_signer(raw: bytes) -> bytes:
    cert = CommitCertificate.decode(raw)
    return CommitCertificate(cert.chain_id, cert.height, cert.round, cert.block_hash,
                             cert.signatures[:1]).encode()


def _bad_signature(raw: bytes) -> bytes:
    cert = CommitCertificate.decode(raw)
    first = cert.signatures[0]
    forged = CommitSignature(first.validator_index, first.signature[:-1] + bytes([first.signature[-1] ^ 1]))
    return CommitCertificate(cert.chain_id, cert.height, cert.round, cert.block_hash,
                             (forged, *cert.signatures[1:])).encode()


def test_an_untouched_chain_checks_out_to_its_tip(tmp_path: Path) -> None:
    _chain(tmp_path / "db")
    tip = _check(tmp_path / "db")
    assert tip.height == BLOCKS and tip.frontier().size == BLOCKS * PER_BLOCK


@pytest.mark.parametrize(("what", "key", "change"), [
    ("ballots reordered", _height_key(b"b", 3), _swap_ballots),
    ("certificate short of a quorum", _height_key(b"c", BLOCKS), _one_signer),
    ("a certificate signature", _height_key(b"c", 2), _bad_signature),
])
def test_a_changed_block_or_certificate_is_refused_naming_it(
        tmp_path: Path, what: str, key: bytes, change: Callable[[bytes], bytes]) -> None:
    """Fails when ``store_check`` skips the check that finds ``what`` (for reordered
    ballots: the log root, tracking-index and log-node checks together, each of which
    alone finds it; removed by hand once)."""
    _chain(tmp_path / "db")
    _rewrite(tmp_path / "db", key, change)
    height = struct.unpack(">Q", key[1:])[0]
    with pytest.raises(StoreCorrupt, match=f"block {height}"):
        _check(tmp_path / "db")


def test_a_changed_index_or_log_node_is_refused(tmp_path: Path) -> None:
    codes = _chain(tmp_path / "db")
    db = plyvel.DB(str(tmp_path / "db"))
    db.put(b"t" + codes[PER_BLOCK + 1], struct.pack(">QQ", 0, 1))  # the tracking index lies
    db.close()
    with pytest.raises(StoreCorrupt, match="block 2: the tracking-code index"):
        _check(tmp_path / "db")
    db = plyvel.DB(str(tmp_path / "db"))
    db.put(b"t" + codes[PER_BLOCK + 1], struct.pack(">QQ", PER_BLOCK + 1, 2))
    db.put(b"m" + bytes([1]) + struct.pack(">Q", 4), b"\x00" * 32)  # a stored log node (ballots 8, 9)
    db.close()
    with pytest.raises(StoreCorrupt, match="block 2: the stored log nodes"):
        _check(tmp_path / "db")
