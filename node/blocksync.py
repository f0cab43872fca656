"""Block sync: certified blocks fetched from peers by a validator that fell behind.

The wire side only. A request names the first height wanted and how many; a response
carries consecutive ``[block, certificate]`` pairs from a peer's store. Whether a block
enters the chain is not decided here: each fetched block, with the ballots worker
processes already checked (``node.precheck``), goes to the ``decide`` callable the driver
passes in, which hands it to the consensus core (the one place that checks it with the
ledger rules and its certificate's quorum) and answers whether the chain grew by it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ledger import codec
from ledger.block import CommitCertificate
from ledger.elections import Elections
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.rules import CheckedBallot, admitted_from_flags
from ledger.store import LedgerStore
from node.precheck import BallotPrechecker

BATCH_BLOCKS = 200  # blocks asked for, and served, per request
RESPONSE_BYTES = 6 * 1024 * 1024  # a response stops growing past this (at least one block)
RETRY_S = 0.5  # one unforced request per this interval, however many peers run ahead
MAX_REQUEST_BYTES = 64


@dataclass(frozen=True)
class SyncedBlock:
    """A fetched block above our tip, with the ballots workers found fully valid."""

    block: bytes
    certificate: CommitCertificate
    admitted: Mapping[bytes, CheckedBallot]

    @property
    def height(self) -> int:
        return self.certificate.height


@dataclass(frozen=True)
class SyncOutcome:
    applied: int  # blocks that entered the chain
    ask_more: bool  # every block of the response was used: the peer may have more


Decide = Callable[[SyncedBlock], bool]


def encode_request(start: int, count: int = BATCH_BLOCKS) -> bytes:
    return codec.encode([codec.int_bytes(start), codec.int_bytes(count)])


def decode_request(payload: bytes) -> tuple[int, int]:
    """(first height, count), the count capped at what a response may carry."""
    fields = codec.as_list(codec.decode(payload, max_size=MAX_REQUEST_BYTES), 2, "sync request")
    start = max(1, codec.as_int(fields[0], "sync start"))
    return start, min(codec.as_int(fields[1], "sync count"), BATCH_BLOCKS)


def decode_response(payload: bytes) -> list[tuple[bytes, CommitCertificate]]:
    items = codec.as_list(codec.decode(payload), None, "sync response")
    entries: list[tuple[bytes, CommitCertificate]] = []
    for item in items:
        pair = codec.as_list(item, 2, "sync entry")
        block = codec.as_bytes(pair[0], "sync block")
        entries.append((block, CommitCertificate.decode(codec.as_bytes(pair[1], "sync certificate"))))
    return entries


class BlockSync:
    """Asks for, serves and takes in certified blocks; owns no consensus or chain state."""

    def __init__(
        self,
        genesis: Genesis,
        store: LedgerStore,
        prechecker: BallotPrechecker,
        *,
        elections: Callable[[], Elections],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``elections()``: those defined on the committed state (definitions a synced
        block's ballots may need; one defined within the same response is checked in order)."""
        self.genesis = genesis
        self.store = store
        self.prechecker = prechecker
        self.elections = elections
        self.clock = clock
        self._last_request = float("-inf")

    def request(self, *, force: bool = False) -> bytes | None:
        """A request for the blocks after our tip, or None if one went out just now."""
        now = self.clock()
        if not force and now - self._last_request < RETRY_S:
            return None
        self._last_request = now
        return encode_request(self.store.height + 1)

    def serve(self, payload: bytes) -> bytes:
        """The response to a peer's request: what we hold of the heights it asked for."""
        start, count = decode_request(payload)
        items: list[codec.Item] = []
        size = 0
        for height in range(start, min(self.store.height, start + count - 1) + 1):
            block, cert = self.store.raw_block(height), self.store.raw_certificate(height)
            size += len(block) + len(cert)
            if items and size > RESPONSE_BYTES:
                break
            items.append([block, cert])
        return codec.encode(items)

    async def receive(self, payload: bytes, decide: Decide) -> SyncOutcome:
        """Take a peer's response: pre-check its new blocks, then ``decide`` each in order.

        Raises LedgerError when the response is malformed or a block the peer sent for our
        next height is refused: the peer is to blame. Blocks consensus decided meanwhile
        are skipped."""
        entries = [e for e in decode_response(payload) if e[1].height > self.store.height]
        if not entries:
            return SyncOutcome(0, ask_more=False)
        # Signatures and proofs in worker processes first; the in-order apply skips them.
        known = self.elections()
        flags = await self.prechecker.check([block for block, _ in entries], known)
        applied = 0
        for (block, certificate), ok in zip(entries, flags, strict=True):
            if certificate.height != self.store.height + 1:
                continue  # decided meanwhile by consensus, or out of order
            synced = SyncedBlock(block, certificate, admitted_from_flags(self.genesis, block, ok, elections=known))
            if not decide(synced):
                raise LedgerError(f"synced block {certificate.height} was refused")
            applied += 1
        return SyncOutcome(applied, ask_more=applied > 0 and applied == len(entries))
