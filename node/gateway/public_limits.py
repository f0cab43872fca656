"""Rate limits for reads without an API key: one token bucket per client address.

Voters and observers read receipts, elections and checkpoints without a key. Each client
address gets a bucket of its own; the table is bounded (least recently seen addresses
are forgotten first), so a flood from many addresses costs memory in proportion to the
bound, not to the flood. Behind a reverse proxy every reader shares the proxy's address:
run the proxy's own per-client limit there. Pure: the caller passes the clock.
"""

from __future__ import annotations

from collections import OrderedDict

from node.gateway.ratelimit import TokenBucket

MAX_ADDRESSES = 65_536  # buckets kept at once (about 100 bytes each)


class PublicLimiter:
    def __init__(self, rate_per_s: float, burst: float, *, max_addresses: int = MAX_ADDRESSES) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, address: str, now: float) -> float:
        """Charge one read to ``address``: 0 if allowed, else the seconds to wait."""
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket.full(self.rate_per_s, self.burst, now)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)  # a forgotten address starts again with a full bucket
        else:
            self._buckets.move_to_end(address)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)
