"""The durable outbox: accepted ballots in LevelDB until the chain has them.

A 202 is sent only after the ballot is in a synced WriteBatch. Writes are group-committed:
requests append to a buffer and one writer task flushes everything buffered in a single
``sync=True`` batch (in a worker thread, so requests keep arriving meanwhile), then
resolves all their futures. Under load one fsync covers hundreds of ballots.

Keys: ``q`` + seq (8 bytes) -> tracking code + ballot (waiting for finality);
``t`` + tracking code -> record (queued / final / rejected, forever, for idempotency);
``c`` + election + 0 + credential -> tracking code of its latest accepted ballot;
``m/seq``, ``m/height`` -> next sequence number, next block height to scan.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plyvel

from ledger.rules import CheckedBallot
from node.gateway.problems import Problem

log = logging.getLogger(__name__)

_Q, _T, _C = b"q", b"t", b"c"
_SEQ, _HEIGHT = b"m/seq", b"m/height"


@dataclass(frozen=True)
class Record:
    """What the gateway remembers of a tracking code after accepting it."""

    status: str  # "queued" (until final), "final", "rejected"
    election_id: str
    error_code: str = ""
    detail: str = ""
    height: int = 0

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"s": self.status, "e": self.election_id}
        if self.error_code:
            obj["c"], obj["d"] = self.error_code, self.detail
        if self.height:
            obj["h"] = self.height
        return json.dumps(obj, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Record:
        obj = json.loads(data)
        return cls(obj["s"], obj["e"], obj.get("c", ""), obj.get("d", ""), obj.get("h", 0))


def decide(code: bytes, existing: Record | None, credential_holder: bytes | None, revoting: str) -> bool:
    """Pure admission rule: True to accept as new, False for a repeat of an accepted
    ballot (same answer again, never a second ballot); raises for a refusal."""
    if existing is not None:
        if existing.status == "rejected":
            raise Problem(existing.error_code or "duplicate_credential", existing.detail or "refused by the chain")
        return False
    if revoting == "first-counts" and credential_holder is not None and credential_holder != code:
        raise Problem(
            "duplicate_credential",
            f"credential already cast ballot {credential_holder.hex()} in this election (first counts)",
        )
    return True


@dataclass
class Queued:
    """A durable ballot not yet final: what the forwarder works from."""

    seq: int
    raw: bytes
    sent_at: float | None = None  # monotonic time a node last answered "pending" for it


@dataclass
class _Pending:
    code: bytes
    seq: int
    raw: bytes
    record: Record
    cred_key: bytes
    future: asyncio.Future[None] = field(repr=False)


class OutboxError(Exception):
    """The disk refused a write: nothing in the failed batch was acknowledged."""


def _cred_key(election_id: str, credential: bytes) -> bytes:
    return _C + election_id.encode() + b"\x00" + credential


class Outbox:
    def __init__(self, path: Path, *, max_items: int = 1024, linger_s: float = 0.0) -> None:
        self.path = path
        self.max_items = max_items
        self.linger_s = linger_s
        path.mkdir(parents=True, exist_ok=True)
        self.db = plyvel.DB(str(path), create_if_missing=True)
        self.queue: OrderedDict[bytes, Queued] = OrderedDict()  # by acceptance order
        self._buffer: list[_Pending] = []
        self._writing: dict[bytes, asyncio.Future[None]] = {}
        self._cred_writing: dict[bytes, bytes] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0  # synced batches written (a gauge of group commit for metrics)
        self.committed_items = 0
        self.last_batch = 0
        self._unsent: deque[bytes] = deque()  # durable, not yet acknowledged by a node
        self._sent: deque[tuple[float, bytes]] = deque()  # (acknowledged at, code), oldest first
        self.on_commit: Callable[[int], None] | None = None
        self._seq = int.from_bytes(self.db.get(_SEQ, b"\x00" * 8), "big")
        for key, value in self.db.iterator(prefix=_Q):
            self.queue[value[:32]] = Queued(int.from_bytes(key[1:], "big"), value[32:])
            self._unsent.append(value[:32])

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="outbox-writer")

    @property
    def is_open(self) -> bool:
        return not self._closing and self._writer is not None and not self._writer.done()

    async def close(self) -> None:
        """Stop taking ballots, flush what is buffered, close the database."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        self.db.close()

    # --- accepting -------------------------------------------------------------------------
    async def admit(self, checked: CheckedBallot) -> bool:
        """Make ``checked`` durable; True if new, False if it was accepted before.

        The decision and the reservation happen without an await in between, so two
        concurrent requests for one credential cannot both pass the duplicate check."""
        if not self.is_open:
            raise Problem("unavailable", "the outbox is closed")
        code = checked.tracking_code
        in_flight = self._writing.get(code)
        if in_flight is not None:
            await asyncio.shield(in_flight)
            return False
        election = checked.election
        cred_key = _cred_key(election.election_id, checked.envelope.credential)
        raw_record = self.db.get(_T + code)
        holder = self._cred_writing.get(cred_key) or self.db.get(cred_key)
        if not decide(code, Record.decode(raw_record) if raw_record else None, holder, election.revoting):
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        record = Record("queued", election.election_id)
        self._buffer.append(_Pending(code, self._seq, checked.envelope.encode(), record, cred_key, future))
        self._writing[code] = future
        self._cred_writing[cred_key] = code
        self._wake.set()
        await asyncio.shield(future)
        return True

    def record(self, code: bytes) -> Record | None:
        pending = self._writing.get(code)
        if pending is not None:
            return None  # not durable yet: not known to the outside either
        raw = self.db.get(_T + code)
        return Record.decode(raw) if raw else None

    async def _write_loop(self) -> None:
        while True:
            if not self._buffer:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if self.linger_s > 0 and len(self._buffer) < self.max_items:
                await asyncio.sleep(self.linger_s)
            batch, self._buffer = self._buffer[: self.max_items], self._buffer[self.max_items :]
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception as exc:  # any disk fault fails exactly this batch
                log.error("outbox write failed: %r", exc)
                for p in batch:
                    self._forget(p)
                    p.future.set_exception(Problem("unavailable", "the outbox could not store the ballot"))
                continue
            self.commits += 1
            self.committed_items += len(batch)
            self.last_batch = len(batch)
            if self.on_commit is not None:
                self.on_commit(len(batch))
            for p in batch:
                self.queue[p.code] = Queued(p.seq, p.raw)
                self._unsent.append(p.code)
                self._forget(p)
                p.future.set_result(None)

    def _forget(self, p: _Pending) -> None:
        self._writing.pop(p.code, None)
        if self._cred_writing.get(p.cred_key) == p.code:
            del self._cred_writing[p.cred_key]

    def _write(self, batch: list[_Pending]) -> None:
        with self.db.write_batch(sync=True) as wb:
            for p in batch:
                wb.put(_Q + p.seq.to_bytes(8, "big"), p.code + p.raw)
                wb.put(_T + p.code, p.record.encode())
                wb.put(p.cred_key, p.code)
            wb.put(_SEQ, batch[-1].seq.to_bytes(8, "big"))

    # --- the forwarder's side --------------------------------------------------------------
    def unsent(self, limit: int, resend_before: float) -> list[tuple[bytes, Queued]]:
        """Up to ``limit`` ballots never acknowledged, then ones acknowledged before
        ``resend_before`` and still not final (the node may have crashed with them in its
        mempool). O(limit): the two deques hold codes in send order; settled ones are skipped."""
        out: list[tuple[bytes, Queued]] = []
        while self._unsent and len(out) < limit:
            code = self._unsent.popleft()
            q = self.queue.get(code)
            if q is not None and q.sent_at is None:
                out.append((code, q))
        while self._sent and len(out) < limit and self._sent[0][0] < resend_before:
            sent_at, code = self._sent.popleft()
            q = self.queue.get(code)
            if q is not None and q.sent_at == sent_at:
                q.sent_at = None
                out.append((code, q))
        return out

    def mark_sent(self, codes: Iterable[bytes]) -> None:
        now = time.monotonic()
        for code in codes:
            q = self.queue.get(code)
            if q is not None:
                q.sent_at = now
                self._sent.append((now, code))

    def retry_later(self, codes: Iterable[bytes]) -> None:
        """Put ballots taken by :meth:`unsent` back at the front (no validator took them)."""
        for code in reversed(list(codes)):
            q = self.queue.get(code)
            if q is not None:
                q.sent_at = None
                self._unsent.appendleft(code)

    def settle(self, final: dict[bytes, int], rejected: dict[bytes, tuple[str, str]]) -> None:
        """Drop settled ballots from the queue. Not synced: if this write is lost, the
        ballots are sent again and the chain answers final or refuses them again."""
        if not final and not rejected:
            return
        with self.db.write_batch() as wb:
            for code, height in final.items():
                self._settle_one(wb, code, "final", height=height)
            for code, (err, detail) in rejected.items():
                self._settle_one(wb, code, "rejected", error=(err, detail))

    def _settle_one(
        self, wb: Any, code: bytes, status: str, *, height: int = 0, error: tuple[str, str] = ("", "")
    ) -> None:
        q = self.queue.pop(code, None)
        if q is None:
            return
        wb.delete(_Q + q.seq.to_bytes(8, "big"))
        raw = self.db.get(_T + code)
        if raw is not None:
            old = Record.decode(raw)
            wb.put(_T + code, Record(status, old.election_id, error[0], error[1], height).encode())

    def next_height(self) -> int | None:
        raw = self.db.get(_HEIGHT)
        return int.from_bytes(raw, "big") if raw else None

    def set_next_height(self, height: int) -> None:
        self.db.put(_HEIGHT, height.to_bytes(8, "big"))
