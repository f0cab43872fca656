"""What a follower may make a node do, and a follower's own refusal of submissions.

A follower links with a key in no validator set (``node.transport``: admitted up to
``max_followers``, its frames rated lower and kept small). On the node's side it may only
ask for certified blocks: any other frame from it is dropped and charged to its key, and
its sync requests are served within a byte budget per key (a token bucket that may go
one burst into debt), so what a follower can make a validator read and send is bounded
by ``follower_sync_bytes_per_s`` whatever it asks. A request over budget is dropped
unanswered; an honest follower asks again after ``node.blocksync.RETRY_S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

from ledger.errors import LedgerError
from node.admission import Answer, BallotAdmission, OnPending
from node.blocksync import RESPONSE_BYTES
from node.config import FollowerLimits
from node.frames import FrameType, TokenBucket

# Points charged to a follower's key for a frame it may not send (transport bans at 100).
OUTSIDER_FRAME_PENALTY = 10.0


class FollowerReadOnly(LedgerError):
    """A follower takes no ballots or transactions: they go to a validator."""

    code = "follower_read_only"


class FollowerGate:
    """Per follower key: which frames it may send, and its budget of served block bytes."""

    def __init__(self, limits: FollowerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[bytes, TokenBucket] = {}
        self.dropped = 0  # sync requests left unanswered: their follower was over budget

    @staticmethod
    def admits(frame_type: FrameType) -> bool:
        return frame_type == FrameType.SYNC_REQUEST

    def may_serve(self, peer: bytes, linked: Collection[bytes]) -> bool:
        """Whether ``peer``'s next sync request is answered now (``linked``: the followers
        linked at the moment, so the buckets of gone keys are dropped)."""
        bucket = self._buckets.get(peer)
        now = self.clock()
        if bucket is None:
            if len(self._buckets) >= 4 * max(1, self.limits.max_followers):
                self._buckets = {k: b for k, b in self._buckets.items() if k in linked}
            rate = float(self.limits.follower_sync_bytes_per_s)
            bucket = self._buckets[peer] = TokenBucket(rate, float(max(rate, 2 * RESPONSE_BYTES)), now)
        if bucket.allow(now):
            return True
        self.dropped += 1
        return False

    def charge(self, peer: bytes, served: int) -> None:
        bucket = self._buckets.get(peer)
        if bucket is not None:
            bucket.charge(float(served), self.clock())


class ReadOnlyAdmission(BallotAdmission):
    """A follower's ``admission``: every submission refused with one clear code."""

    async def admit(self, items: Sequence[bytes | LedgerError], *, on_pending: OnPending | None = None) -> list[Answer]:
        return [FollowerReadOnly("this node is a follower: submit to a validator") for _ in items]
