"""The chain store: blocks, certificates, the log's nodes and the indexes.

Blocks go to append-only files (:mod:`ledger.blockfiles`); everything else, each block's
location among them included, to LevelDB. Each block is committed as its bytes appended
and synced, then one synced WriteBatch naming them, so after a crash at any instant the
store holds exactly the blocks up to the last completed commit. It knows nothing of the
rules: :mod:`ledger.chain` checks a block before handing its effects here.

The transaction index (:mod:`ledger.tx_index`) is written in the block's own batch, with
the height it is complete to. A store of an older layout (blocks without index entries)
catches up when opened, in bounded batches, each with the height it reached, so an
interrupted catch-up resumes where it stopped; no reader ever builds it.
"""

from __future__ import annotations

import collections
import logging
import os
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import plyvel

from ledger import codec, merkle
from ledger.block import Block, BlockHeader, Checkpoint, CommitCertificate
from ledger.blockfiles import SEGMENT_BYTES, BlockFiles, BlockLocation
from ledger.errors import BadTreeRange, LedgerError, NotAStore, StoreChainMismatch, StoreCorrupt, StoreError
from ledger.genesis import Genesis
from ledger.rules import BlockEffects
from ledger.state import ChainTip
from ledger.tx_index import presented_hashes

log = logging.getLogger(__name__)

MAGIC = b"ballot-ledger/store/v1"
_K_MAGIC = b"\x00meta/magic"
_K_GENESIS = b"\x00meta/genesis"
_K_TIP = b"\x00meta/tip"
_K_TX_INDEXED = b"\x00meta/tx-index"  # the height the transaction index is complete to
_P_BLOCK = b"b"  # height -> block: the layout before block files, still read
_P_BLOCK_AT = b"f"  # height -> its BlockLocation in the block files
_P_CERT = b"c"
_P_HASH = b"h"
_P_NODE = b"m"
_P_TRACK = b"t"
_P_USE = b"u"
_P_TX = b"x"  # transaction hash -> (height, position)
_P_TX_BLOCK = b"w"  # height -> b"": the block holds authority transactions
_U64 = struct.Struct(">Q")
_TRACK = struct.Struct(">QQ")
#: Blocks one catch-up batch of the transaction index covers (~50 bytes a block without
#: transactions), so catching up holds little in memory and keeps its progress.
TX_INDEX_BATCH_BLOCKS = 20_000
# Upper tree levels are few and read by every proof: keep them in memory.
_CACHED_LEVEL = 8


def open_checked(path: str | os.PathLike[str], what: str, **options: Any) -> Any:
    """A node's own LevelDB (a ``plyvel.DB``), refused with :class:`StoreCorrupt` if any
    of it is damaged.

    By default LevelDB drops damaged log records at open without a word (a store that
    forgets blocks, a signing log that forgets votes) and reads table blocks unchecked;
    ``paranoid_checks`` refuses a damaged log or manifest, and one sequential read of
    every table with checksums a damaged table, before anything is served or signed from
    it (keys only, not kept in the cache: about 0.25 us a key from the page cache, so
    about a second for a million ballots' ~4 million keys). A database that cannot be
    opened at all (another process holds it) is :class:`NotAStore`.
    """
    try:
        db = plyvel.DB(str(path), paranoid_checks=True, **options)
    except plyvel.CorruptionError as exc:
        raise _corrupt(path, what, exc) from None
    except plyvel.Error as exc:  # held by another process, unreadable, ...
        raise NotAStore(f"{what} {path} could not be opened as a LevelDB database: {_detail(exc)}") from None
    try:
        with db.iterator(include_value=False, verify_checksums=True, fill_cache=False) as keys:
            collections.deque(keys, maxlen=0)
    except plyvel.CorruptionError as exc:
        db.close()
        raise _corrupt(path, what, exc) from None
    return db


def _detail(exc: plyvel.Error) -> str:
    return exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)


def _corrupt(path: str | os.PathLike[str], what: str, exc: plyvel.Error) -> StoreCorrupt:
    return StoreCorrupt(f"{what} {path} is damaged and is not used ({_detail(exc)})")


def _node_key(level: int, index: int) -> bytes:
    return _P_NODE + bytes([level]) + _U64.pack(index)


_CREDENTIAL_PREFIXES: dict[tuple[bytes, str], bytes] = {}  # only genesis elections reach here


def credential_key(table: bytes, election_id: str, credential: bytes) -> bytes:
    """A per-(election, credential) key: ``table || len(id) || id || credential``. Also the
    verifier's index layout; the per-election prefix is built once."""
    prefix = _CREDENTIAL_PREFIXES.get((table, election_id))
    if prefix is None:
        eid = election_id.encode()
        prefix = _CREDENTIAL_PREFIXES[(table, election_id)] = table + bytes([len(eid)]) + eid
    return prefix + credential


def split_credential_key(key: bytes) -> tuple[str, bytes]:
    """(election id, credential) of a key :func:`credential_key` made (any table)."""
    size = key[1]
    return key[2 : 2 + size].decode(), key[2 + size :]


def _use_key(election_id: str, credential: bytes) -> bytes:
    return credential_key(_P_USE, election_id, credential)


class LedgerStore:
    """One chain's data in one LevelDB directory."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        genesis: Genesis,
        *,
        cache_mib: int = 128,
        genesis_tip: ChainTip | None = None,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.path = Path(path)
        self.genesis = genesis
        self._genesis_tip = genesis_tip
        fresh = not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))
        if self.path.exists() and not self.path.is_dir():
            raise NotAStore(f"{self.path} is a file, not a ballot-ledger store directory")
        if not fresh and not (self.path / "CURRENT").exists():
            raise NotAStore(f"{self.path} is not empty and is not a LevelDB database")
        if fresh:
            self.path.mkdir(parents=True, exist_ok=True)
        # Proofs at 10M leaves read ~24 random nodes and the rules look up tracking
        # codes that are mostly absent: a block cache, small blocks and bloom filters
        # serve both; hashes and signatures do not compress, so snappy only costs.
        # Tracking codes and credentials are random keys, so every table the 4 MiB
        # default memtable flushes overlaps all of level 1 and compaction grows with
        # the chain (30% of a validator's CPU by the end of 5 minutes at 2,000 ballots/s);
        # a 64 MiB memtable flushes a sixteenth as often (scripts/bench/network.py),
        # and with blocks in their own files it holds five times the ballots.
        self._db = open_checked(
            self.path,
            "the chain store",
            create_if_missing=fresh,
            lru_cache_size=cache_mib << 20,
            bloom_filter_bits=10,
            block_size=1024,
            compression=None,
            write_buffer_size=64 << 20,
        )
        self._files = BlockFiles(self.path, segment_bytes=segment_bytes)
        try:
            if fresh:
                self._initialise()
            self._check_identity()
            self._tip = ChainTip.decode(self._get(_K_TIP, "chain tip"))
            raw_indexed = self._db.get(_K_TX_INDEXED)
            # Absent: a store of the layout before the index, whose blocks all lack it.
            self._tx_indexed = 0 if raw_indexed is None else int(_U64.unpack(raw_indexed)[0])
            self._open_block_files()
            self._catch_up_tx_index()
        except BaseException:
            self._files.close()
            self._db.close()
            raise
        self._node_cache: dict[tuple[int, int], bytes] = {}

    # --- opening ----------------------------------------------------------------------
    def _initialise(self) -> None:
        with self._db.write_batch(transaction=True, sync=True) as wb:
            wb.put(_K_MAGIC, MAGIC)
            wb.put(_K_GENESIS, self.genesis.encode())
            wb.put(_K_TIP, (self._genesis_tip or ChainTip.at_genesis(self.genesis)).encode())
            wb.put(_K_TX_INDEXED, _U64.pack(0))

    def _check_identity(self) -> None:
        magic = self._read(_K_MAGIC)
        if magic != MAGIC:
            raise NotAStore(f"{self.path} is a LevelDB database but not a ballot-ledger store")
        stored = self._get(_K_GENESIS, "genesis")
        if stored != self.genesis.encode():
            try:
                chain = _chain_id_of(stored)
            except LedgerError:
                chain = "?"
            raise StoreChainMismatch(
                f"{self.path} holds chain {chain!r} with another genesis; this node is configured "
                f"for chain {self.genesis.chain_id!r} (genesis {self.genesis.hash().hex()})"
            )

    def _open_block_files(self) -> None:
        """Cut the block files back to the tip's block (a crash between an append and its
        batch), then read every block in them once with its CRC, as the LevelDB open reads
        every table: damage is refused now, not when a peer or a verifier asks for it."""
        last = self._location(self._tip.height) if self._tip.height else None
        self._files.open_at(last)
        start, stop = _P_BLOCK_AT, _P_BLOCK_AT + _U64.pack(self._tip.height + 1)
        with self._db.iterator(start=start, stop=stop, verify_checksums=True, fill_cache=False) as located:
            for key, raw in located:
                what = f"block {_U64.unpack(key[1:])[0]}"
                self._files.read(BlockLocation.decode(raw, what), what)

    def close(self) -> None:
        self._files.close()
        if not self._db.closed:
            self._db.close()

    def snapshot(self) -> Any:
        """A LevelDB snapshot: the store as of now, read while commits go on (backup);
        with :meth:`block_files` taken at the same instant, the whole store."""
        return self._db.snapshot()

    def block_files(self) -> list[tuple[Path, int]]:
        """Each block file and the length of it the committed blocks fill, as of now."""
        return self._files.extent()

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- raw helpers ------------------------------------------------------------------
    def _read(self, key: bytes) -> bytes | None:
        """One value, its table block checked: damage after the open check is refused too."""
        try:
            value: bytes | None = self._db.get(key, verify_checksums=True)
        except plyvel.CorruptionError as exc:
            raise _corrupt(self.path, "the chain store", exc) from None
        return value

    def _get(self, key: bytes, what: str) -> bytes:
        value: bytes | None = self._read(key)
        if value is None:
            raise StoreCorrupt(f"store is missing its {what}")
        return value

    # --- chain ------------------------------------------------------------------------
    @property
    def tip(self) -> ChainTip:
        return self._tip

    @property
    def height(self) -> int:
        return self._tip.height

    def commit(self, block: Block, certificate: CommitCertificate, effects: BlockEffects) -> None:
        """Append a checked block to the block files and sync them, then write its
        location, certificate and effects in one synced batch."""
        height = block.header.height
        if height != self._tip.height + 1 or effects.tip.height != height:
            raise StoreError(f"commit of block {height} on a store at height {self._tip.height}")
        location = self._files.append(block.encode())
        try:
            self._files.sync()
            indexed = self._write_commit(block, certificate, effects, location)
        except BaseException:
            self._files.discard(location)
            raise
        self._tip = effects.tip
        self._tx_indexed = indexed

    def _write_commit(self, block: Block, certificate: CommitCertificate, effects: BlockEffects,
                      location: BlockLocation) -> int:
        height = block.header.height
        hb = _U64.pack(height)
        with self._db.write_batch(transaction=True, sync=True) as wb:
            wb.put(_P_BLOCK_AT + hb, location.encode())
            wb.put(_P_CERT + hb, certificate.encode())
            wb.put(_P_HASH + block.hash(), hb)
            if block.last_commit is not None:
                # The certificate the chain embeds becomes the canonical one for h-1.
                wb.put(_P_CERT + _U64.pack(height - 1), block.last_commit.encode())
            for level, index, node in effects.merkle_nodes:
                wb.put(_node_key(level, index), node)
            for offset, checked in enumerate(effects.ballots):
                wb.put(_P_TRACK + checked.tracking_code, _TRACK.pack(effects.first_log_index + offset, height))
            for checked in effects.counted:
                wb.put(_use_key(checked.election.election_id, checked.envelope.credential), checked.tracking_code)
            self._put_tx_index(wb, height, block.transactions)
            indexed = height if self._tx_indexed == height - 1 else self._tx_indexed
            wb.put(_K_TX_INDEXED, _U64.pack(indexed))
            wb.put(_K_TIP, effects.tip.encode())
        return indexed

    def _location(self, height: int) -> BlockLocation | None:
        raw = self._read(_P_BLOCK_AT + _U64.pack(height))
        return None if raw is None else BlockLocation.decode(raw, f"block {height}")

    def block(self, height: int) -> Block:
        return Block.decode(self.raw_block(height))

    def raw_block(self, height: int) -> bytes:
        location = self._location(height)
        if location is None:  # a block committed before block files, or none at all
            return self._get(_P_BLOCK + _U64.pack(height), f"block {height}")
        return self._files.read(location, f"block {height}")

    def header(self, height: int) -> BlockHeader:
        return self.block(height).header

    def certificate(self, height: int) -> CommitCertificate:
        return CommitCertificate.decode(self._get(_P_CERT + _U64.pack(height), f"certificate {height}"))

    def raw_certificate(self, height: int) -> bytes:
        return self._get(_P_CERT + _U64.pack(height), f"certificate {height}")

    def height_of(self, block_hash: bytes) -> int | None:
        raw = self._read(_P_HASH + block_hash)
        return None if raw is None else int(_U64.unpack(raw)[0])

    def checkpoint(self, height: int | None = None) -> Checkpoint:
        h = self._tip.height if height is None else height
        if h < 1 or h > self._tip.height:
            raise BadTreeRange(f"no committed block at height {h}")
        return Checkpoint(self.header(h), self.certificate(h))

    def iter_blocks(self, start: int = 1) -> Iterator[tuple[bytes, bytes]]:
        """(block, certificate) encodings from ``start`` to the tip."""
        for h in range(start, self._tip.height + 1):
            yield self.raw_block(h), self.raw_certificate(h)

    # --- the transaction index (ledger.tx_index) ------------------------------------------
    @property
    def tx_indexed_height(self) -> int:
        """The height the transaction index is complete to (the tip, once open)."""
        return self._tx_indexed

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, position) of the transaction with this hash among those its block
        presents (:func:`ledger.tx_index.presented_hashes`), if a committed block has it."""
        raw = self._db.get(_P_TX + tx_hash)
        if raw is None:
            return None
        height, position = _TRACK.unpack(raw)
        return int(height), int(position)

    def heights_with_transactions(self, lo: int, hi: int, limit: int) -> list[int]:
        """The heights from ``lo`` to ``hi`` whose blocks hold authority transactions, in
        order, at most ``limit`` of them (the caller tells a range with more by asking
        for one more than it serves)."""
        out: list[int] = []
        hi = min(hi, self._tip.height)
        if hi < lo or limit <= 0:
            return out
        keys = self._db.iterator(start=_P_TX_BLOCK + _U64.pack(lo), stop=_P_TX_BLOCK + _U64.pack(hi + 1),
                                 include_value=False)
        for key in keys:
            out.append(int(_U64.unpack(key[1:])[0]))
            if len(out) >= limit:
                break
        return out

    def _put_tx_index(self, wb: plyvel.WriteBatch, height: int, transactions: Sequence[bytes]) -> None:
        for position, tx_hash in enumerate(presented_hashes(self.genesis.chain_id, height, transactions)):
            wb.put(_P_TX + tx_hash, _TRACK.pack(height, position))
        if transactions:
            wb.put(_P_TX_BLOCK + _U64.pack(height), b"")

    def index_transactions(self, max_blocks: int = TX_INDEX_BATCH_BLOCKS) -> int:
        """Index the next at most ``max_blocks`` blocks the index lacks, in one synced batch
        with the height reached (writing an entry again is harmless); return that height."""
        start = self._tx_indexed + 1
        end = min(self._tip.height, self._tx_indexed + max_blocks)
        if end < start:
            return self._tx_indexed
        with self._db.write_batch(transaction=True, sync=True) as wb:
            for height in range(start, end + 1):
                self._put_tx_index(wb, height, transactions_of(self.raw_block(height)))
            wb.put(_K_TX_INDEXED, _U64.pack(end))
        self._tx_indexed = end
        return end

    def _catch_up_tx_index(self) -> None:
        if self._tx_indexed >= self._tip.height:
            return
        first, started = self._tx_indexed + 1, time.monotonic()
        log.warning("transaction index lacks blocks %d to %d (a store of an older layout): indexing them now",
                    first, self._tip.height)
        while self._tx_indexed < self._tip.height:
            self.index_transactions(TX_INDEX_BATCH_BLOCKS)
            log.info("transaction index at block %d of %d", self._tx_indexed, self._tip.height)
        log.warning("transaction index caught up: %d blocks in %.1f s",
                    self._tip.height - first + 1, time.monotonic() - started)

    # --- LedgerView -------------------------------------------------------------------
    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        value: bytes | None = self._read(_use_key(election_id, credential))
        return value

    def has_ballot(self, tracking_code: bytes) -> bool:
        return self._read(_P_TRACK + tracking_code) is not None

    def ballot_position(self, tracking_code: bytes) -> tuple[int, int] | None:
        """(log index, block height) of a recorded ballot, once its block is the tip or
        below. A reader on another thread can see a block's batch in LevelDB an instant
        before ``commit`` publishes the new tip; until then the ballot is not recorded
        here, so no receipt is made against a checkpoint whose log does not hold it."""
        raw = self._read(_P_TRACK + tracking_code)
        if raw is None:
            return None
        index, height = _TRACK.unpack(raw)
        if height > self._tip.height:
            return None
        return int(index), int(height)

    # --- the log's proofs (merkle.HashReader) --------------------------------------------
    @property
    def log_size(self) -> int:
        return self._tip.frontier().size

    def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        out: list[bytes] = []
        cache = self._node_cache
        get = self._read
        for level, index in ids:
            key = (level, index)
            node = cache.get(key)
            if node is None:
                node = get(_node_key(level, index))
                if node is None:
                    raise StoreCorrupt(f"store is missing log node at level {level} index {index}")
                if level >= _CACHED_LEVEL:
                    cache[key] = node
            out.append(node)
        return out

    def _check_size(self, size: int) -> None:
        if size > self.log_size:
            raise BadTreeRange(f"log size {size} is beyond the committed log of {self.log_size}")

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof_from(self, index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self._check_size(new_size)
        return merkle.consistency_proof_from(self, old_size, new_size)

    def log_root(self, size: int) -> bytes:
        self._check_size(size)
        return merkle.root_from(self, size)


def transactions_of(raw_block: bytes) -> tuple[bytes, ...]:
    """A stored block's transactions, its header and ballots skipped over unread (a block
    is ``[header, ballots, transactions, last commit]``, :meth:`ledger.block.Block.encode`)."""
    _, pos, end = codec.read_header(raw_block, 0, len(raw_block))
    for _ in range(2):
        _, _, pos = codec.read_header(raw_block, pos, end)
    is_list, _, stop = codec.read_header(raw_block, pos, end)
    if not is_list:
        raise StoreCorrupt("a stored block's transactions are not a list")
    return codec.as_bytes_list(codec.decode(raw_block[pos:stop]), "block transactions")


def _chain_id_of(genesis_encoding: bytes) -> str:
    from ledger import codec

    fields = codec.as_list(codec.decode(genesis_encoding), None, "stored genesis")
    return codec.as_text(fields[0], "stored chain id", max_size=64)
