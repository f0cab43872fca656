"""The verifier's index of the chain so far, on disk so memory stays flat at any size.

A temporary LevelDB holds, per (election, credential), the tracking code and payload that
currently count (one value, so the rules and the tally share one read), and the tracking
codes of ballots in elections that allow revoting. Under first-counts a credential has
one ballot in the log, the one that counts, so the only question the rules ask of
tracking codes there (is this other ballot of a used credential in the log?) is always
"no", and those codes are not written: half the index's writes, on most elections.

A block's writes go in one batch at its end; reads within the block go through a small
cache that also holds the block's own pending writes. A credential that has not voted
(nearly every ballot's) is answered by an in-memory filter instead of a LevelDB lookup
of an absent key (see ledger.seen_filter).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import plyvel

from ledger.genesis import Genesis
from ledger.rules import BlockEffects
from ledger.seen_filter import SeenFilter
from ledger.store import credential_key, split_credential_key
from ledger.tally import CountedKey

_CODE = b"t"
_COUNTED = b"u"
_PROGRESS = b"\x00progress"


def _counted_key(election_id: str, credential: bytes) -> bytes:
    return credential_key(_COUNTED, election_id, credential)


class DiskIndex:
    """LedgerView for ``apply_block`` plus the tally's counted-payload store."""

    def __init__(
        self, genesis: Genesis, directory: Path | None = None, *, keep_at: Path | None = None, cache_mib: int = 32
    ) -> None:
        """A temporary index (under ``directory``), or with ``keep_at`` a lasting one there
        that a later run resumes from (see :meth:`progress`)."""
        self.kept = keep_at is not None
        if keep_at is not None:
            keep_at.mkdir(parents=True, exist_ok=True)
            self._dir = keep_at
        else:
            self._dir = Path(tempfile.mkdtemp(prefix="ballotledger-index-", dir=directory))
        # Memory stays flat only if LevelDB's own is bounded: few open tables (each
        # keeps its index and bloom filter in memory) and small memtables.
        self._db = plyvel.DB(
            str(self._dir), create_if_missing=True, bloom_filter_bits=10,
            lru_cache_size=cache_mib << 20, compression=None, write_buffer_size=8 << 20,
            max_open_files=64,
        )
        self._seen = SeenFilter(sum(e.credential_count for e in genesis.elections))
        self._refill_seen()
        self._cache: dict[CountedKey, bytes | None] = {}  # this block's reads
        self._payloads: dict[CountedKey, bytes] = {}  # this block's tally writes
        self.payloads = _Payloads(self)

    @property
    def path(self) -> Path:
        """The index's private temporary directory (the replay keeps its EVM state here too)."""
        return self._dir

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
        if not self.kept:
            shutil.rmtree(self._dir, ignore_errors=True)

    def progress(self) -> bytes | None:
        """The replay's saved progress: written with each block's index changes, in one
        batch, so the index never holds a block the progress does not count."""
        value: bytes | None = self._db.get(_PROGRESS)
        return value

    def _refill_seen(self) -> None:
        """A lasting index resumed: every credential it holds, into the filter."""
        for key in self._db.iterator(prefix=_COUNTED, include_value=False):
            self._seen.add(*split_credential_key(key))

    def __enter__(self) -> DiskIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _counted(self, election_id: str, credential: bytes) -> bytes | None:
        key = (election_id, credential)
        cache = self._cache
        if key in cache:
            return cache[key]
        value: bytes | None = None
        if self._seen.maybe_seen(election_id, credential):
            value = self._db.get(_counted_key(election_id, credential))
        cache[key] = value
        return value

    # --- LedgerView -------------------------------------------------------------------
    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        value = self._counted(election_id, credential)
        return None if value is None else value[:32]

    def has_ballot(self, tracking_code: bytes) -> bool:
        """For ``check_unique``: exact for ballots of revoting elections; for first-counts
        ones it is asked only of a ballot whose credential counts another, never in the log."""
        return self._db.get(_CODE + tracking_code) is not None

    def counted_payloads(self, election_id: str) -> Iterator[bytes]:
        """The payload that counts for each credential of one election, in key order
        (by credential), this block's pending tally writes included and taking
        precedence over what is stored (after the last block, nothing is pending)."""
        pending = sorted(
            (credential_key(_COUNTED, eid, credential), payload)
            for (eid, credential), payload in self._payloads.items() if eid == election_id
        )
        i = 0
        with self._db.iterator(prefix=credential_key(_COUNTED, election_id, b"")) as stored:
            for key, value in stored:
                while i < len(pending) and pending[i][0] < key:
                    yield pending[i][1]
                    i += 1
                if i < len(pending) and pending[i][0] == key:
                    yield pending[i][1]
                    i += 1
                else:
                    yield value[32:]
        for _, payload in pending[i:]:
            yield payload

    def apply(self, effects: BlockEffects, progress: bytes | None = None) -> None:
        """Record a block's ballots (after the tally has read what it needs), and with
        them the replay's progress if given."""
        seen = self._seen
        with self._db.write_batch() as wb:
            put = wb.put
            if progress is not None:
                put(_PROGRESS, progress)
            for checked in effects.ballots:
                if checked.election.revoting != "first-counts":
                    put(_CODE + checked.tracking_code, b"")
            for checked in effects.counted:
                election_id, credential = checked.election.election_id, checked.envelope.credential
                put(_counted_key(election_id, credential), checked.tracking_code + checked.envelope.payload)
                seen.add(election_id, credential)
        self._cache.clear()
        self._payloads.clear()


class _Payloads:
    """The payload counting for each credential: a ledger.tally.CountedStore."""

    def __init__(self, index: DiskIndex) -> None:
        self._index = index

    def get(self, key: CountedKey) -> bytes | None:
        pending = self._index._payloads.get(key)
        if pending is not None:
            return pending
        value = self._index._counted(*key)
        return None if value is None else value[32:]

    def __setitem__(self, key: CountedKey, value: bytes) -> None:
        self._index._payloads[key] = value
