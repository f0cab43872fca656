"""The peer transport's pure core: wire frames, handshake framing, and the misbehaviour policy.

No I/O and no clock here: time is passed in, so everything is testable without sockets
and ``node/transport.py`` stays a thin asyncio driver. The handshake's cryptography and
the sealed (encrypted, authenticated) frames that follow it live in ``node/peerlink.py``.

Wire format of one handshake frame (LINK_INIT, LINK_RESPONSE, LINK_FINISH; unencrypted)::

    length (4 bytes, big-endian) | type (1 byte) | payload (length - 1 bytes)

``length`` counts the type byte and the payload, so it is never 0. After the handshake
every frame is sealed (see ``node.peerlink``); inside the seal it is the same
``type | payload``. Payloads are opaque to the transport (consensus messages, ballot
batches and sync messages are encoded elsewhere); only the handshake frames, PING and PONG
are interpreted by the transport.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from ledger import codec
from ledger.errors import BadEncoding, LedgerError

HEADER_SIZE = 5
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
# Before the handshake only LINK_* frames may arrive (under 250 bytes each), so an
# unauthenticated socket can never make us buffer more than this.
HANDSHAKE_MAX_FRAME_SIZE = 512
MAX_PING_PAYLOAD = 8
MAX_CHAIN_ID_SIZE = 64


class FrameType(IntEnum):
    """Frame type byte. Extend by adding members here; values are never reused."""

    # 1 and 2 were the unencrypted HELLO / HELLO_ACK handshake: retired, never reused.
    CONSENSUS = 3  # opaque consensus message
    TXS = 4  # a batch of opaque ballot encodings (see encode_batch)
    SYNC_REQUEST = 5
    SYNC_RESPONSE = 6
    PING = 7
    PONG = 8
    EVM_TX = 9  # one authority transaction (raw, signed)
    LINK_INIT = 10  # handshake, node.peerlink: dialler -> acceptor
    LINK_RESPONSE = 11  # acceptor -> dialler
    LINK_FINISH = 12  # dialler -> acceptor
    COMPACT_PROPOSAL = 13  # a proposal naming its ballots by tracking code (node.compact)
    PROPOSAL_REQUEST = 14  # "send me your whole proposal of (height, round)"


# Handled by the transport itself; everything else goes to the application callback.
HANDSHAKE_TYPES = frozenset({FrameType.LINK_INIT, FrameType.LINK_RESPONSE, FrameType.LINK_FINISH})
CONTROL_TYPES = HANDSHAKE_TYPES | {FrameType.PING, FrameType.PONG}


# --- errors ----------------------------------------------------------------------------
class TransportError(LedgerError):
    code = "transport_error"


class BadFrame(TransportError):
    code = "bad_frame"


class OversizedFrame(BadFrame):
    code = "oversized_frame"


class UnknownFrameType(BadFrame):
    code = "unknown_frame_type"


class HandshakeFailed(TransportError):
    code = "handshake_failed"


class ConnectedToSelf(HandshakeFailed):
    """We dialled our own listening address: not an error to retry."""

    code = "connected_to_self"


# --- frames ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    type: FrameType
    payload: bytes

    def encode(self) -> bytes:
        return encode_frame(self.type, self.payload)


def encode_frame(
    frame_type: int, payload: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> bytes:
    body_len = 1 + len(payload)
    if body_len > max_frame_size:
        raise OversizedFrame(f"frame of {body_len} bytes exceeds the limit of {max_frame_size}")
    if frame_type not in FrameType._value2member_map_:
        raise UnknownFrameType(f"unknown frame type {frame_type}")
    return body_len.to_bytes(4, "big") + bytes([frame_type]) + payload


def parse_header(header: bytes, max_frame_size: int) -> tuple[FrameType, int]:
    """Check a 5-byte header; return the frame type and the payload length.

    Everything a header can get wrong is refused here, before any of the body is awaited.
    """
    if len(header) != HEADER_SIZE:
        raise BadFrame(f"frame header must be {HEADER_SIZE} bytes")
    body_len = int.from_bytes(header[:4], "big")
    if body_len == 0:
        raise BadFrame("frame length 0 (a frame has at least its type byte)")
    if body_len > max_frame_size:
        raise OversizedFrame(f"frame of {body_len} bytes exceeds the limit of {max_frame_size}")
    try:
        frame_type = FrameType(header[4])
    except ValueError:
        raise UnknownFrameType(f"unknown frame type {header[4]}") from None
    return frame_type, body_len - 1


# --- payload helpers -------------------------------------------------------------------
def encode_batch(items: Sequence[bytes]) -> bytes:
    """TXS payload: an RLP list of opaque ballot encodings."""
    return codec.encode(list(items))


def decode_batch(payload: bytes, *, max_items: int) -> tuple[bytes, ...]:
    try:
        return codec.as_bytes_list(codec.decode(payload), "txs batch", max_items=max_items)
    except BadEncoding as exc:
        raise BadFrame(f"bad TXS payload: {exc.message}") from exc


# --- policy: backoff, rate limit, misbehaviour score -----------------------------------
class Backoff:
    """Exponential backoff with "equal jitter": delay in [d/2, d], d doubling up to ``cap``.

    Jitter keeps validators that lost a peer at the same moment from redialling in lockstep.
    """

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base: float = base
        self.cap: float = cap
        self._rng = rng
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2.0 ** min(self._attempt, 32))
        self._attempt += 1
        return delay / 2 + self._rng.uniform(0, delay / 2)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per frame."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._updated = burst, now

    def allow(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def charge(self, tokens: float, now: float) -> None:
        """Take ``tokens`` whether or not they are there (down to one burst in debt)."""
        self._refill(now)
        self._tokens = max(-self.burst, self._tokens - tokens)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.burst

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now


class HostBudget:
    """What a remote host may cost us before its connections authenticate.

    Per host: handshakes started per second (a token bucket; a failed handshake costs
    ``failure_cost`` more) and sockets open in handshake at once; in total: sockets open in
    handshake. Checked when a socket is accepted, before any byte is read or any
    cryptography runs. Nothing here touches a validator key's score: until a connection
    has authenticated, nobody knows whose it is, so it is charged to its address only.
    At most ``max_hosts`` hosts are tracked; idle ones are forgotten first.
    """

    def __init__(
        self, rate: float, burst: float, failure_cost: float, max_open_per_host: int,
        max_open_total: int, max_hosts: int = 4096,
    ) -> None:
        self.rate, self.burst, self.failure_cost = rate, burst, failure_cost
        self.max_open_per_host, self.max_open_total = max_open_per_host, max_open_total
        self.max_hosts = max_hosts
        self._buckets: dict[str, TokenBucket] = {}
        self._open: dict[str, int] = {}
        self.open_total = 0

    def admit(self, host: str, now: float) -> str | None:
        """Count a new socket from ``host`` in; or say why it is refused (then it is not)."""
        if self.open_total >= self.max_open_total:
            return f"{self.open_total} connections already in handshake"
        if self._open.get(host, 0) >= self.max_open_per_host:
            return f"{self.max_open_per_host} connections from {host} already in handshake"
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= self.max_hosts:
                self._forget_idle(now)
            if len(self._buckets) >= self.max_hosts:
                return "too many hosts in handshake"
            bucket = self._buckets[host] = TokenBucket(self.rate, self.burst, now)
        if not bucket.allow(now):
            return f"too many handshakes from {host}"
        self._open[host] = self._open.get(host, 0) + 1
        self.open_total += 1
        return None

    def release(self, host: str, now: float, *, failed: bool) -> None:
        """The socket ``admit`` counted has authenticated or given up."""
        left = self._open.get(host, 0) - 1
        if left < 0:
            raise AssertionError("release without admit")  # or else this class has a bug
        if left:
            self._open[host] = left
        else:
            del self._open[host]
        self.open_total -= 1
        if failed and host in self._buckets:
            self._buckets[host].charge(self.failure_cost, now)

    def _forget_idle(self, now: float) -> None:
        for host in [h for h, b in self._buckets.items() if h not in self._open and b.full(now)]:
            del self._buckets[host]


@dataclass
class _Score:
    points: float = 0.0
    updated: float = 0.0
    banned_until: float = field(default=float("-inf"))


class Misbehaviour:
    """Points per peer key that decay over time; crossing ``threshold`` bans for ``ban_seconds``.

    Kept per key rather than per connection so that reconnecting does not wipe the slate.
    """

    def __init__(self, threshold: float, decay_per_second: float, ban_seconds: float) -> None:
        self.threshold, self.decay, self.ban_seconds = threshold, decay_per_second, ban_seconds
        self._scores: dict[bytes, _Score] = {}

    def offend(self, key: bytes, points: float, now: float) -> bool:
        """Add points; True if this pushes the peer over the threshold (it is now banned)."""
        s = self._scores.setdefault(key, _Score(updated=now))
        s.points = max(0.0, s.points - (now - s.updated) * self.decay) + points
        s.updated = now
        if s.points >= self.threshold and now >= s.banned_until:
            s.banned_until = now + self.ban_seconds
            s.points = 0.0  # a fresh start once the ban is served
            return True
        return False

    def points(self, key: bytes, now: float) -> float:
        s = self._scores.get(key)
        return 0.0 if s is None else max(0.0, s.points - (now - s.updated) * self.decay)

    def ban_remaining(self, key: bytes, now: float) -> float:
        s = self._scores.get(key)
        return 0.0 if s is None else max(0.0, s.banned_until - now)
