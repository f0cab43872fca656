"""The verifier's index of the chain so far, on disk so memory stays flat at any size.

A temporary LevelDB holds every tracking code seen and, per (election, credential), the
tracking code and payload that currently count. Writes of a block go in one batch at
the block's end; reads within the block see them through a small overlay.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import plyvel

from ledger.rules import BlockEffects
from ledger.tally import CountedKey

_CODE = b"t"
_COUNTED = b"u"
_PAYLOAD = b"p"


def _counted_key(election_id: str, credential: bytes) -> bytes:
    eid = election_id.encode()
    return bytes([len(eid)]) + eid + credential


class DiskIndex:
    """LedgerView for ``apply_block`` plus the tally's counted-payload mapping."""

    def __init__(self, directory: Path | None = None, *, cache_mib: int = 64) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ballotledger-index-", dir=directory))
        self._db = plyvel.DB(
            str(self._dir), create_if_missing=True, bloom_filter_bits=10,
            lru_cache_size=cache_mib << 20, compression=None, write_buffer_size=32 << 20,
        )
        self._overlay: dict[bytes, bytes] = {}
        self.payloads = _Payloads(self)

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> DiskIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, key: bytes) -> bytes | None:
        value = self._overlay.get(key)
        if value is None:
            value = self._db.get(key)
        return value

    # --- LedgerView -------------------------------------------------------------------
    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        return self._get(_COUNTED + _counted_key(election_id, credential))

    def has_ballot(self, tracking_code: bytes) -> bool:
        return self._get(_CODE + tracking_code) is not None

    def apply(self, effects: BlockEffects) -> None:
        """Record a block's ballots; call after the tally has read what it needs."""
        overlay = self._overlay
        for checked in effects.ballots:
            overlay[_CODE + checked.tracking_code] = b"\x01"
        for election_id, credential, code in effects.counted:
            overlay[_COUNTED + _counted_key(election_id, credential)] = code
        with self._db.write_batch() as wb:
            for key, value in overlay.items():
                wb.put(key, value)
        overlay.clear()


class _Payloads:
    """The payload counting for each credential: a ledger.tally.CountedStore."""

    def __init__(self, index: DiskIndex) -> None:
        self._index = index

    def get(self, key: CountedKey) -> bytes | None:
        return self._index._get(_PAYLOAD + _counted_key(*key))

    def __setitem__(self, key: CountedKey, value: bytes) -> None:
        self._index._overlay[_PAYLOAD + _counted_key(*key)] = value
