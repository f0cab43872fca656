"""The ledger as the consensus core's application: propose, validate and commit blocks.

Validation results are kept by block hash, so the block a validator prevoted for is not
checked a second time when it commits, and ballots admitted by the mempool are not
checked a second time inside any block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ledger.assemble import assemble_block
from ledger.block import Block, CommitCertificate
from ledger.chain import Chain
from ledger.errors import BadTime, LedgerError
from ledger.rules import BlockEffects, CheckedBallot
from node.mempool import Mempool
from node.txpool import TxPool

log = logging.getLogger(__name__)
MAX_CLOCK_DRIFT_MS = 5_000


@dataclass(frozen=True)
class _Validated:
    parent: bytes
    block: Block
    effects: BlockEffects


class _Either(Mapping[bytes, CheckedBallot]):
    """Two admitted-ballot mappings seen as one, without copying either."""

    def __init__(self, first: Mapping[bytes, CheckedBallot], second: Mapping[bytes, CheckedBallot]) -> None:
        self._first, self._second = first, second

    def __getitem__(self, raw: bytes) -> CheckedBallot:
        found = self._first.get(raw)
        return found if found is not None else self._second[raw]

    def __iter__(self) -> Iterator[bytes]:
        yield from self._first
        yield from (c for c in self._second if c not in self._first)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class LedgerApplication:
    def __init__(
        self,
        chain: Chain,
        mempool: Mempool,
        proposer_key: bytes,
        clock_ms: Callable[[], int],
        *,
        max_block_ballots: int | None = None,
        txpool: TxPool | None = None,
    ) -> None:
        self.chain = chain
        self.mempool = mempool
        self.proposer_key = proposer_key
        self.clock_ms = clock_ms
        self.txpool = txpool
        self.max_block_ballots = min(
            max_block_ballots or chain.genesis.params.max_block_ballots, chain.genesis.params.max_block_ballots
        )
        self._validated: dict[bytes, _Validated] = {}
        self._decoded: dict[bytes, Block] = {}
        self.refused_blocks = 0

    # --- consensus Application protocol ------------------------------------------------
    def build_block(self, height: int, round_: int) -> bytes:
        store = self.chain.store
        tip = store.tip
        if height != tip.height + 1:
            raise LedgerError(f"asked to propose height {height} on a chain at {tip.height}")
        now = max(self.clock_ms(), tip.time_ms + 1)
        ballots = self.mempool.take(self.max_block_ballots, now)
        last = store.certificate(tip.height) if tip.height >= 1 else None
        txs = self.txpool.take(tip.state_root, tip.height + 1, now) if self.txpool is not None else []
        block = assemble_block(
            self.chain.genesis, tip, ballots, time_ms=now, proposer=self.proposer_key, last_commit=last,
            transactions=txs, engine=self.chain.engine,
        )
        raw = block.encode()
        self._decoded[raw] = block
        return raw

    def validate_block(
        self, height: int, raw: bytes, *, admitted: Mapping[bytes, CheckedBallot] | None = None
    ) -> bool:
        """valid(v). ``admitted``: ballots of a synced block that worker processes already
        checked (``node.blocksync``); the result is kept, so the core's own question about
        the same block on the same tip is answered from it."""
        try:
            block = self._decode(raw)
            if block.header.height != height:
                return False
            cached = self._validated.get(block.hash())
            if cached is not None and cached.parent == self.chain.store.tip.block_hash:
                return True
            # Timeliness is a proposal rule, not a chain rule: replay cannot know "now".
            if block.header.time_ms > self.clock_ms() + MAX_CLOCK_DRIFT_MS:
                raise BadTime(f"block time {block.header.time_ms} is too far in the future")
            effects = self.chain.check(block, admitted=self._admitted(admitted))
        except LedgerError as exc:
            self.refused_blocks += 1
            log.warning("refusing proposed block at height %d: %s", height, exc)
            return False
        self._validated[block.hash()] = _Validated(self.chain.store.tip.block_hash, block, effects)
        return True

    def block_hash(self, raw: bytes) -> bytes:
        return self._decode(raw).hash()

    def has_work(self, height: int) -> bool:
        """Whether a block now would carry something: a ballot the mempool would give it,
        an authority transaction, or an election's window opening or closing since the
        tip (so the chain's time shows the change without waiting for a checkpoint)."""
        tip = self.chain.store.tip
        if height != tip.height + 1:
            return False
        now = max(self.clock_ms(), tip.time_ms + 1)
        if self.txpool is not None and len(self.txpool):
            return True
        if self.mempool.take(1, now):
            return True
        return any(tip.time_ms < t <= now for t in self._window_edges())

    def next_time_event_ms(self) -> int | None:
        """The next window opening or closing after the tip's time and the clock, if any."""
        after = max(self.clock_ms(), self.chain.store.tip.time_ms)
        return min((t for t in self._window_edges() if t > after), default=None)

    def _window_edges(self) -> Iterator[int]:
        for election in self.mempool.elections():
            yield election.opens_at_ms
            yield election.closes_at_ms

    # --- commit -------------------------------------------------------------------------
    def commit(self, raw: bytes, certificate: CommitCertificate) -> BlockEffects:
        """Durably append a decided block (or a synced one); raise if the rules refuse it."""
        block = self._decode(raw)
        cached = self._validated.get(block.hash())
        # Chain.commit uses what validate_block checked only if it was on the current tip
        effects = self.chain.commit(
            block, certificate, admitted=self._admitted(), checked=cached.effects if cached else None
        )
        self.mempool.remove_committed(effects)
        if self.txpool is not None:
            self.txpool.remove(block.transactions)
        self._validated.clear()
        self._decoded.clear()
        return effects

    def _admitted(self, extra: Mapping[bytes, CheckedBallot] | None = None) -> Mapping[bytes, CheckedBallot]:
        if extra:
            return _Either(extra, self.mempool.admitted)
        return self.mempool.admitted

    def _decode(self, raw: bytes) -> Block:
        block = self._decoded.get(raw)
        if block is None:
            block = Block.decode(raw)
            if len(self._decoded) > 64:
                self._decoded.clear()
            self._decoded[raw] = block
        return block
