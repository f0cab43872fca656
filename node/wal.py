"""The signing write-ahead log: every message this validator signs, durable before sent.

On restart the consensus core is rebuilt from these records, so it re-sends what it
signed instead of ever signing something conflicting. One synced LevelDB put a record.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

from ledger.errors import StoreCorrupt
from ledger.store import open_checked

_KEY = struct.Struct(">QQ")  # height, sequence


class SigningLog:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        # A record silently dropped at open would let a restart sign a conflicting vote.
        self._db = open_checked(path, "the signing log", create_if_missing=True)
        last = None
        with self._db.iterator(reverse=True, include_value=False) as it:
            for key in it:
                last = key
                break
        self._seq = 0 if last is None else _KEY.unpack(last)[1] + 1
        # Where the last pruning stopped: a scan from the start would walk every
        # tombstone left by earlier prunes (LevelDB keeps them until compaction).
        self._pruned_to = 0
        self.on_synced: Callable[[float], None] | None = None  # seconds each synced write took

    def append(self, height: int, record: bytes) -> None:
        """Durably record ``record``; returns only once it is on disk."""
        started = time.perf_counter()
        self._db.put(_KEY.pack(height, self._seq), record, sync=True)
        if self.on_synced is not None:
            self.on_synced(time.perf_counter() - started)
        self._seq += 1

    def records(self, height: int) -> list[bytes]:
        start = _KEY.pack(height, 0)
        stop = _KEY.pack(height + 1, 0)
        out: list[bytes] = []
        for key, value in self._db.iterator(start=start, stop=stop):
            if len(key) != _KEY.size:
                raise StoreCorrupt("signing log holds a malformed key")
            out.append(value)
        return out

    def prune_below(self, height: int) -> None:
        """Forget records of heights already committed (they can never be signed again)."""
        if height <= self._pruned_to:
            return
        with self._db.write_batch() as wb:
            for key in self._db.iterator(
                start=_KEY.pack(self._pruned_to, 0), stop=_KEY.pack(height, 0), include_value=False
            ):
                wb.delete(key)
        self._pruned_to = height

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
