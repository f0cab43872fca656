"""``eth_getLogs`` and the polling filters, over any :class:`LogSource`.

Ranges are read as the common clients read them: a ``toBlock`` past the tip is the tip,
a ``fromBlock`` past the tip matches nothing, a ``fromBlock`` after ``toBlock`` is
invalid, and ``blockHash`` excludes both (EIP-234). One query reads at most
``max_log_blocks`` blocks and answers at most :data:`MAX_LOGS` logs (-32005 beyond,
with ``log_range_too_large`` or ``too_many_logs``); the blocks it reads are those of its
range that may hold a matching log (:meth:`LogSource.candidate_heights`), so a query for
events other than the per-block checkpoint may span far more blocks than it reads. A
filter polled after a long pause answers ``max_log_blocks`` blocks' worth a poll and
goes on from there at the next.

Filters live in memory, at most :data:`MAX_FILTERS` (the oldest is dropped for a new
one), as on a node behind a load balancer a client must expect them to vanish.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from contracts.engine import EvmLog
from node.eth_common import FINAL_TAGS, EthRpcError, data_hex, parse_quantity, qty
from node.jsonrpc import InvalidParams, Method, hex_param
from node.rpc_limits import LimitExceeded

MAX_LOGS = 10_000
MAX_FILTERS = 1_000


class LogRangeTooLarge(LimitExceeded):
    code = "log_range_too_large"


class TooManyLogs(LimitExceeded):
    code = "too_many_logs"


class LogSource(Protocol):
    """What log queries need from the chain (``node.eth_rpc.EthMethods`` is one)."""

    @property
    def head(self) -> int:
        """The tip's height."""
        ...

    def height_of_hash(self, block_hash: bytes) -> int | None: ...

    def block_hash_at(self, height: int) -> bytes: ...

    def logs_at(self, height: int, keep: Callable[[EvmLog], bool]) -> list[dict[str, Any]]:
        """Block ``height``'s logs that ``keep`` accepts, as JSON-RPC log objects."""
        ...

    def candidate_heights(self, q: LogQuery, lo: int, hi: int) -> Sequence[int]:
        """The heights from ``lo`` to ``hi`` that may hold a log ``q`` matches, in order
        (all of them, or fewer where the source knows which blocks have which logs; a
        source may stop listing them past one more than a query may read)."""
        ...


@dataclass(frozen=True)
class LogQuery:
    """A parsed filter object: block bounds (tags or numbers, unresolved) or a block
    hash, addresses (None: any), and topics by position (None: any)."""

    from_block: Any
    to_block: Any
    block_hash: bytes | None
    addresses: frozenset[bytes] | None
    topics: tuple[frozenset[bytes] | None, ...]

    @classmethod
    def parse(cls, obj: Any) -> LogQuery:
        if obj is None:
            obj = {}
        if not isinstance(obj, dict):
            raise InvalidParams("filter must be an object")
        addresses: frozenset[bytes] | None = None
        raw_addr = obj.get("address")
        if raw_addr is not None:
            items = raw_addr if isinstance(raw_addr, list) else [raw_addr]
            addresses = frozenset(hex_param(a, "address", size=20) for a in items)
        raw_topics = obj.get("topics") or []
        if not isinstance(raw_topics, list) or len(raw_topics) > 4:
            raise InvalidParams("topics must be a list of at most 4 positions")
        topics: list[frozenset[bytes] | None] = []
        for i, t in enumerate(raw_topics):
            if t is None:
                topics.append(None)
            else:
                options = t if isinstance(t, list) else [t]
                topics.append(frozenset(hex_param(x, f"topics[{i}]", size=32) for x in options))
        block_hash = obj.get("blockHash")
        if block_hash is not None and (obj.get("fromBlock") is not None or obj.get("toBlock") is not None):
            raise InvalidParams("a filter names either blockHash or fromBlock/toBlock, not both")
        return cls(
            from_block=obj.get("fromBlock", "latest"),
            to_block=obj.get("toBlock", "latest"),
            block_hash=None if block_hash is None else hex_param(block_hash, "blockHash", size=32),
            addresses=addresses,
            topics=tuple(topics),
        )

    def keeps(self, log: EvmLog) -> bool:
        if self.addresses is not None and log.address not in self.addresses:
            return False
        if len(self.topics) > len(log.topics):
            return False
        return all(opt is None or log.topics[i] in opt for i, opt in enumerate(self.topics))


@dataclass
class _Filter:
    kind: str  # "logs", "blocks" or "transactions"
    query: LogQuery | None = None
    next: int | None = None  # the first height the next poll answers from (None: fromBlock)
    seen: list[str] = field(default_factory=list)


def bound(tag: Any, head: int, what: str) -> int:
    """A filter's block bound as a height, which may lie past the tip."""
    if tag is None or tag in FINAL_TAGS:
        return head
    if tag == "earliest":
        return 0
    return parse_quantity(tag, what)


class LogFilters:
    def __init__(self, source: LogSource, *, max_log_blocks: int) -> None:
        self.source = source
        self.max_log_blocks = max_log_blocks
        self._filters: dict[str, _Filter] = {}
        self._ids = itertools.count(1)

    def table(self) -> dict[str, Method]:
        return {
            "eth_getLogs": self.get_logs,
            "eth_newFilter": self.new_filter,
            "eth_newBlockFilter": self.new_block_filter,
            "eth_newPendingTransactionFilter": self.new_pending_transaction_filter,
            "eth_getFilterLogs": self.get_filter_logs,
            "eth_getFilterChanges": self.get_filter_changes,
            "eth_uninstallFilter": self.uninstall_filter,
        }

    def heights(self, q: LogQuery, start: int | None = None, stop: int | None = None) -> Sequence[int]:
        """The heights a query reads (see the module docstring); a poll's first and last
        height are ``start`` and ``stop``."""
        head = self.source.head
        if q.block_hash is not None:
            h = self.source.height_of_hash(q.block_hash)
            if h is None:
                raise EthRpcError("block not found")
            return range(h, h + 1)
        lo, hi = bound(q.from_block, head, "fromBlock"), min(bound(q.to_block, head, "toBlock"), head)
        if start is not None:
            lo = max(lo, start)
        if stop is not None:
            hi = min(hi, stop)
        if lo > head or (start is not None and lo > hi):
            return range(0)
        if lo > hi:
            raise InvalidParams(f"fromBlock {lo} is after toBlock {hi}")
        to_read = self.source.candidate_heights(q, lo, hi)
        if len(to_read) > self.max_log_blocks:
            raise LogRangeTooLarge(
                f"a log query may read at most {self.max_log_blocks} blocks; blocks {lo} to {hi} have "
                f"more to read: split the range")
        return to_read

    def matching(self, q: LogQuery, heights: Sequence[int]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for height in heights:
            out.extend(self.source.logs_at(height, q.keeps))
            if len(out) > MAX_LOGS:
                raise TooManyLogs(f"more than {MAX_LOGS} logs match: narrow the query")
        return out

    async def get_logs(self, filter_params: Any = None) -> list[dict[str, Any]]:
        q = LogQuery.parse(filter_params)
        return self.matching(q, self.heights(q))

    def _add(self, f: _Filter) -> str:
        if len(self._filters) >= MAX_FILTERS:
            self._filters.pop(next(iter(self._filters)))
        fid = qty(next(self._ids))
        self._filters[fid] = f
        return fid

    async def new_filter(self, filter_params: Any = None) -> str:
        return self._add(_Filter("logs", LogQuery.parse(filter_params)))

    async def new_block_filter(self) -> str:
        return self._add(_Filter("blocks", next=self.source.head + 1))

    async def new_pending_transaction_filter(self) -> str:
        """Answers no hashes: a transaction is shown once final, in its block (there is
        no pending block to watch on a chain whose every block is final)."""
        return self._add(_Filter("transactions"))

    def _get(self, filter_id: Any) -> _Filter:
        f = self._filters.get(filter_id) if isinstance(filter_id, str) else None
        if f is None:
            raise EthRpcError("filter not found")
        return f

    async def get_filter_logs(self, filter_id: str) -> list[dict[str, Any]]:
        f = self._get(filter_id)
        if f.query is None:
            raise InvalidParams("not a log filter")
        return self.matching(f.query, self.heights(f.query))

    async def get_filter_changes(self, filter_id: str) -> list[Any]:
        f = self._get(filter_id)
        head = self.source.head
        if f.kind == "transactions":
            return []
        # A poll answers at most max_log_blocks blocks' worth; the next one goes on from there.
        if f.query is None:
            start = f.next if f.next is not None else head + 1
            end = min(head, start + self.max_log_blocks - 1)
            f.next = max(start, end + 1)
            return [data_hex(self.source.block_hash_at(h)) for h in range(start, end + 1)]
        start = f.next if f.next is not None else bound(f.query.from_block, head, "fromBlock")
        to_height = min(head, bound(f.query.to_block, head, "toBlock"), start + self.max_log_blocks - 1)
        if start > to_height:
            return []
        logs = self.matching(f.query, self.heights(f.query, start, to_height))
        f.next = to_height + 1
        return logs

    async def uninstall_filter(self, filter_id: str) -> bool:
        return self._filters.pop(filter_id, None) is not None if isinstance(filter_id, str) else False
