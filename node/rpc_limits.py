"""What a JSON-RPC client may cost a validator: call weights, batch budgets, and token
buckets per client address.

Pure: the clock is passed in. The refusals carry JSON-RPC code -32005 ("limit
exceeded", as EIP-1474 numbers it) and a stable ledger code in ``data.code``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from ledger.errors import LedgerError

LIMIT_EXCEEDED = -32005

# A call's weight in batch-budget units: about a millisecond of the read worker's time
# or 10 KiB of answer per unit, rounded to a few steps. Unlisted methods weigh DEFAULT_COST.
DEFAULT_COST = 10
METHOD_COSTS: dict[str, int] = {
    "ballot_status": 1,
    "ballot_getGenesis": 1,
    "ballot_getElections": 5,
    "ballot_getCheckpoint": 2,
    "ballot_getValidators": 2,
    "ballot_getInclusionProof": 2,
    "ballot_getConsistencyProof": 2,
    "ballot_getReceipt": 5,
    "ballot_getBallot": 5,
    "ballot_getResults": 5,
    "ballot_submit": 1,
    "ballot_submitBatch": 10,
    "ballot_getTrackingCodes": 100,
    "ballot_getBlocks": 200,
    "eth_chainId": 1,
    "net_version": 1,
    "net_listening": 1,
    "web3_clientVersion": 1,
    "eth_syncing": 1,
    "eth_blockNumber": 1,
    "eth_gasPrice": 1,
    "eth_maxPriorityFeePerGas": 1,
    "eth_accounts": 1,
    "eth_getCode": 2,
    "eth_getBalance": 2,
    "eth_getTransactionCount": 2,
    "eth_getStorageAt": 2,
    "eth_uninstallFilter": 1,
    "eth_newBlockFilter": 1,
    "eth_newFilter": 2,
    "eth_getBlockByNumber": 20,
    "eth_getBlockByHash": 20,
    "eth_getBlockTransactionCountByNumber": 5,
    "eth_getTransactionByHash": 20,
    "eth_getTransactionByBlockNumberAndIndex": 20,
    "eth_getTransactionReceipt": 20,
    "eth_getBlockReceipts": 20,
    "eth_sendRawTransaction": 20,
    "eth_call": 100,
    "eth_estimateGas": 100,
    "eth_getLogs": 200,
    "net_peerCount": 1,
    "web3_sha3": 2,
    "eth_mining": 1,
    "eth_hashrate": 1,
    "eth_blobBaseFee": 1,
    "eth_newPendingTransactionFilter": 1,
    "eth_getUncleCountByBlockNumber": 2,
    "eth_getUncleCountByBlockHash": 2,
    "eth_getUncleByBlockNumberAndIndex": 2,
    "eth_getUncleByBlockHashAndIndex": 2,
    "eth_getBlockTransactionCountByHash": 5,
    "eth_getTransactionByBlockHashAndIndex": 20,
    "eth_getRawTransactionByHash": 20,
    "eth_feeHistory": 200,
    "eth_getProof": 50,
    "eth_getFilterLogs": 200,
    "eth_getFilterChanges": 200,
}


class LimitExceeded(LedgerError):
    """A client asked for more than its share; ``retry_after_ms`` says when to try again
    (None: the request itself is too large and will never pass)."""

    code = "limit_exceeded"

    def __init__(self, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class OverBudget(LimitExceeded):
    code = "over_budget"


class RateLimited(LimitExceeded):
    code = "rate_limited"


class Busy(LimitExceeded):
    code = "busy"


def method_cost(name: object) -> int:
    return METHOD_COSTS.get(name, DEFAULT_COST) if isinstance(name, str) else 1


def batch_cost(requests: Iterable[object]) -> int:
    """The weight of a parsed request or batch, from its method names alone."""
    total = 0
    for request in requests:
        total += method_cost(request.get("method")) if isinstance(request, dict) else 1
    return total


BYTES_PER_PARSE_UNIT = 128  # parsing long strings costs ~4 ns a byte, a float ~500 ns


def parse_units(body: bytes) -> int:
    """What parsing ``body`` may cost, in units of about half a microsecond."""
    return json_values(body) + len(body) // BYTES_PER_PARSE_UNIT


def json_values(body: bytes) -> int:
    """An upper bound on the values in a JSON text: one more than its separators.

    Parsing costs per value (up to ~500 ns for a float) far more than per byte, so this
    count, taken at memchr speed, is what bounds the parse; separators inside strings
    only make the bound looser.
    """
    return body.count(b",") + body.count(b":") + 1


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; full at the start."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens and answer 0, or take none and answer the seconds until
        ``n`` would be there (infinite if ``n`` is more than the bucket holds)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        if n > self.burst:
            return float("inf")
        return (n - self.tokens) / self.rate

    def full_at(self) -> float:
        return self.updated + (self.burst - self.tokens) / self.rate


class ClientBuckets:
    """One token bucket per client address, for at most ``max_clients`` of them.

    A client whose bucket has refilled is indistinguishable from a new one, so buckets
    are dropped oldest-use first once full ones are gone; when every kept bucket is in
    use, the new client shares the least recently used one's (never a free pass).
    """

    def __init__(
        self, rate: float, burst: float, *, exempt: Iterable[str] = (), max_clients: int = 10_000
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.exempt = frozenset(exempt)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, n: float, now: float, what: str) -> None:
        """Charge ``client`` ``n`` tokens or raise RateLimited (nothing charged)."""
        if client in self.exempt:
            return
        bucket = self._bucket(client, now)
        wait = bucket.take(n, now)
        if wait == float("inf"):
            raise RateLimited(f"{n:g} {what} at once exceeds the limit of {self.burst:g}")
        if wait > 0:
            raise RateLimited(
                f"{what} limited to {self.rate:g}/s per client (burst {self.burst:g}); retry later",
                retry_after_ms=int(wait * 1000) + 1,
            )

    def _bucket(self, client: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(client)
        if bucket is not None:
            self._buckets.move_to_end(client)
            return bucket
        while len(self._buckets) >= self.max_clients:
            oldest_client, oldest = next(iter(self._buckets.items()))
            if oldest.full_at() > now:
                self._buckets.move_to_end(oldest_client)
                return oldest  # every kept client is mid-refill: share, never reset
            del self._buckets[oldest_client]
        bucket = self._buckets[client] = TokenBucket(self.rate, self.burst, now)
        return bucket
