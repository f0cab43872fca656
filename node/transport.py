"""asyncio TCP transport between validators: a thin driver around ``node.frames``.

(``asyncio.timeout`` rather than ``asyncio.wait_for`` throughout: on Python 3.11 wait_for
can swallow a cancellation that races its inner future, which left stop() waiting forever.)

Topology: every transport dials every address it is given and accepts every inbound
connection; after the handshake, duplicates for one peer are resolved by a rule both ends
evaluate identically (see ``_replaces``), so exactly one live connection per peer pair
remains. Dial loops redial a lost peer with capped exponential backoff plus jitter.

Every link is authenticated and encrypted (``node.peerlink``): the dialler runs the
initiator's side of the handshake, the acceptor the responder's; after it, every frame is
sealed on its way out (in the write loop, so the counter follows the order on the wire)
and opened on its way in.

Who pays for what:

* Before a connection has authenticated, nobody knows whose it is. Each accepted socket
  is first admitted by the remote host's budget (``frames.HostBudget``: handshakes per
  second and sockets in handshake, per host and in total), before a byte is read;
  handshake frames are bounded by ``HANDSHAKE_MAX_FRAME_SIZE`` before their body is
  read, and the whole handshake by ``handshake_timeout``. A failed handshake costs its
  host's budget, never a validator key's score.
* On an established link, bytes that do not open under the session key (a bad tag, an
  impossible length) may have been written by anyone on the path: the connection is
  dropped and counted in ``link_errors``, and nobody is charged.
* Only frames that opened under the session key are the peer's own doing: a malformed or
  unexpected frame, a flood past the frame rate, or what the application reports through
  ``report_misbehaviour`` is charged to the key that authenticated the link.
* An outsider (a follower: a key in no validator set, admitted only while
  ``max_outsiders`` > 0 and, if ``outsider_keys`` is given, only those keys) is hostile by
  default. At most ``max_outsiders`` are linked at once; each has its own, lower frame
  rate and a small largest frame (what a sync request needs), and ``broadcast`` never
  reaches it: it gets only the answers the application sends it. Outsider keys cost
  nothing to make, so banning one bounds little; the host budget and the cap do.

Callbacks (all optional):

* ``on_frame(peer_key, frame_type, payload)``: every non-control frame (CONSENSUS, TXS,
  SYNC_*, and any type added to ``FrameType``) from an authenticated peer, in arrival order
  per peer. It may be a plain function or a coroutine function; a coroutine is awaited in
  that peer's reader task, so a slow handler slows reading from that peer only (TCP then
  pushes back on it). Exceptions are logged and do not drop the connection.
* ``on_peer_up(peer_key)`` / ``on_peer_down(peer_key)``: plain functions, called when a
  peer becomes connected / is no longer connected (not when a duplicate is swapped).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ledger.crypto import SigningKey
from node.frames import (
    CONTROL_TYPES,
    DEFAULT_MAX_FRAME_SIZE,
    HANDSHAKE_MAX_FRAME_SIZE,
    HEADER_SIZE,
    MAX_PING_PAYLOAD,
    Backoff,
    BadFrame,
    ConnectedToSelf,
    Frame,
    FrameType,
    HandshakeFailed,
    HostBudget,
    Misbehaviour,
    OversizedFrame,
    TokenBucket,
    TransportError,
    encode_frame,
    parse_header,
)
from node.logs import event
from node.peerlink import EPHEMERAL_SIZE, Init, Initiator, LinkCorrupted, LinkParams, Responder, Session

log = logging.getLogger("node.transport")

FrameHandler = Callable[[bytes, FrameType, bytes], "Awaitable[None] | None"]
PeerHandler = Callable[[bytes], None]
Address = tuple[str, int]


@dataclass(frozen=True)
class TransportConfig:
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    queue_size: int = 1024  # outgoing frames per peer; beyond that, send() drops and counts
    # ... and outgoing bytes per peer: a peer that asks for large frames (sync responses)
    # and does not read them cannot make us hold more than this for it.
    max_queue_bytes: int = 32 * 1024 * 1024
    read_chunk: int = 64 * 1024
    handshake_timeout: float = 5.0
    ping_interval: float = 5.0
    dead_timeout: float = 15.0  # no bytes at all from a peer for this long: it is dead
    write_timeout: float = 10.0  # a peer that takes longer to drain our writes is dropped
    max_frames_per_second: float = 1000.0
    frame_burst: float = 2000.0
    bad_frame_penalty: float = 50.0  # malformed frame or protocol violation
    rate_penalty: float = 1.0  # per frame over the rate limit (the frame is also dropped)
    ban_threshold: float = 100.0
    score_decay_per_second: float = 1.0
    ban_seconds: float = 60.0
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    # A duplicate arriving this long after the existing connection was established means
    # the peer thinks that one is dead (e.g. it restarted): the newcomer wins.
    duplicate_grace: float = 5.0
    # What an unauthenticated remote host may cost (frames.HostBudget). Validators redial
    # with backoff, so an honest host needs a handshake every few seconds at most.
    handshakes_per_second_per_host: float = 10.0
    handshake_burst_per_host: float = 40.0
    handshake_failure_cost: float = 4.0  # extra tokens a failed handshake takes
    max_handshaking_per_host: int = 16
    max_handshaking: int = 64
    # Followers: how many may link at once (0: none), which keys (empty: any), and what
    # one may send. A follower sends a sync request every half second or so.
    max_outsiders: int = 0
    outsider_keys: frozenset[bytes] = frozenset()
    outsider_frames_per_second: float = 10.0
    outsider_frame_burst: float = 20.0
    outsider_max_frame_size: int = 1024

    def __post_init__(self) -> None:
        if not 0 < self.ping_interval < self.dead_timeout:
            raise ValueError("need 0 < ping_interval < dead_timeout")
        if self.max_frame_size < HANDSHAKE_MAX_FRAME_SIZE:
            raise ValueError(f"max_frame_size must be at least {HANDSHAKE_MAX_FRAME_SIZE}")


@dataclass
class PeerStats:
    """Per peer key, kept across reconnections."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    bad_frames: int = 0
    drops: int = 0  # outgoing frames dropped because the peer's queue was full
    rate_limited: int = 0  # incoming frames dropped for exceeding the frame rate
    connects: int = 0
    disconnects: int = 0
    link_errors: int = 0  # links dropped for bytes that did not authenticate (not charged)


@dataclass(frozen=True)
class _Outcome:
    peer_key: bytes | None = None
    established: bool = False
    self_dial: bool = False


class _Connection:
    """One TCP stream. Authenticated once ``peer_key`` is set."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool,
        queue_size: int,
    ) -> None:
        self.reader, self.writer, self.outbound = reader, writer, outbound
        self.peer_key = b""
        self.session: Session | None = None
        self.queue: asyncio.Queue[tuple[FrameType, bytes]] = asyncio.Queue(queue_size)
        self.queued_bytes = 0  # payload bytes in ``queue``
        self.closed = asyncio.Event()
        self.reason = ""
        self.tasks: list[asyncio.Task[None]] = []
        self.established_at = 0.0
        self.last_rx = 0.0
        peer = writer.get_extra_info("peername")
        self.host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.label = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Idempotent. Closing the transport also wakes the reader with EOF."""
        if self.closed.is_set():
            return
        self.reason = reason
        self.closed.set()
        if abort:
            self.writer.transport.abort()  # discard unsent data: the peer is not owed it
        else:
            self.writer.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    async def wait_shut(self) -> None:
        current = asyncio.current_task()
        others = [t for t in self.tasks if t is not current]
        await asyncio.gather(*others, return_exceptions=True)
        try:
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except TimeoutError:
            self.writer.transport.abort()  # peer not reading what is left: stop trying
        except (OSError, ConnectionError):
            pass


class PeerTransport:
    """Authenticated, encrypted, length-framed TCP links to the other validators.

    ``validators`` maps each allowed public key (33-byte compressed) to a display name;
    normally the genesis validator set (our own key may be in it). ``port=0`` lets the OS
    choose; read ``port`` after ``start()``.
    """

    def __init__(
        self,
        signing_key: SigningKey,
        *,
        chain_id: str,
        genesis_hash: bytes,
        validators: Mapping[bytes, str],
        host: str = "127.0.0.1",
        port: int = 0,
        on_frame: FrameHandler | None = None,
        on_peer_up: PeerHandler | None = None,
        on_peer_down: PeerHandler | None = None,
        config: TransportConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._key = signing_key
        self.public_key = signing_key.public_key
        self.chain_id, self.genesis_hash = chain_id, genesis_hash
        self.validators = dict(validators)
        self.host, self._port = host, port
        self.on_frame, self.on_peer_up, self.on_peer_down = on_frame, on_peer_up, on_peer_down
        self.config = config or TransportConfig()
        self._rng = rng or random.Random()
        c = self.config
        self._policy = Misbehaviour(c.ban_threshold, c.score_decay_per_second, c.ban_seconds)
        self._hosts = HostBudget(
            c.handshakes_per_second_per_host, c.handshake_burst_per_host,
            c.handshake_failure_cost, c.max_handshaking_per_host, c.max_handshaking,
        )
        self._link = LinkParams(signing_key, chain_id, genesis_hash, self.validators,
                                c.max_frame_size, outsiders=c.max_outsiders > 0)
        self._stats: dict[bytes, PeerStats] = {}
        self._buckets: dict[bytes, TokenBucket] = {}
        self._peers: dict[bytes, _Connection] = {}  # the one live connection per peer
        self._open: set[_Connection] = set()  # every socket, authenticated or not
        self._addr_keys: dict[Address, bytes] = {}  # learnt at each successful handshake
        self._dialing: dict[Address, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._stopping = False
        self.handshake_failures = 0  # refused or broken handshakes (no key to blame)
        # Our dials in handshake, by ephemeral, and those our own listener received: the
        # responder never answers its own key, so this is how the dialler learns it dialled us.
        self._dialling: set[bytes] = set()
        self._dialled_self: set[bytes] = set()
        self.refused_by_budget = 0  # sockets closed unread: their host was over its budget
        self._budget_logged = float("-inf")

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> Address:
        return (self.host, self._port)

    async def start(self) -> None:
        self._stopping = False
        self._server = await asyncio.start_server(self._on_inbound, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("listening on %s:%d", self.host, self._port,
                 extra=event("p2p_listening", address=f"{self.host}:{self._port}"))

    async def stop(self) -> None:
        """Close the listener, every connection and every task; returns when all are done."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in self._dialing.values():
            task.cancel()
        for conn in list(self._open):
            conn.close("transport stopping")
        tasks = [*self._dialing.values(), *self._tasks]
        for conn in list(self._open):
            tasks.extend(conn.tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._dialing.clear()
        self._addr_keys.clear()

    def connect_to(self, addresses: Iterable[Address]) -> None:
        """Keep a connection to each address, redialling as needed, until ``stop()``."""
        for address in addresses:
            address = (address[0], int(address[1]))
            if address not in self._dialing and not self._stopping:
                self._dialing[address] = asyncio.create_task(self._dial_loop(address))

    # --- sending -----------------------------------------------------------------------
    def send(self, peer_key: bytes, frame_type: FrameType, payload: bytes) -> bool:
        """Queue a frame for one peer; never blocks. False if not connected or dropped."""
        self._check_outgoing(frame_type, payload)
        conn = self._peers.get(peer_key)
        return conn is not None and self._enqueue(conn, (frame_type, payload))

    def broadcast(self, frame_type: FrameType, payload: bytes) -> int:
        """Queue a frame for every connected validator (never an outsider); never blocks.
        Returns how many took it."""
        self._check_outgoing(frame_type, payload)
        frame = (frame_type, payload)
        return sum(self._enqueue(conn, frame) for key, conn in list(self._peers.items()) if key in self.validators)

    def _check_outgoing(self, frame_type: FrameType, payload: bytes) -> None:
        if frame_type in CONTROL_TYPES:
            raise ValueError(f"{frame_type.name} frames belong to the transport")
        if 1 + len(payload) > self.config.max_frame_size:
            limit = self.config.max_frame_size
            raise OversizedFrame(f"frame of {1 + len(payload)} bytes exceeds the limit of {limit}")

    def _enqueue(self, conn: _Connection, frame: tuple[FrameType, bytes]) -> bool:
        size = len(frame[1])
        if conn.queued_bytes + size > self.config.max_queue_bytes and not conn.queue.empty():
            self._stats_for(conn.peer_key).drops += 1
            return False
        try:
            conn.queue.put_nowait(frame)
            conn.queued_bytes += size
            return True
        except asyncio.QueueFull:
            self._stats_for(conn.peer_key).drops += 1
            return False

    # --- introspection and policy ------------------------------------------------------
    def peers(self) -> list[bytes]:
        """Public keys of the authenticated, connected peers, sorted."""
        return sorted(self._peers)

    def peer_count(self) -> int:
        """How many peers are connected (safe to call from another thread: one ``len``)."""
        return len(self._peers)

    def peer_name(self, peer_key: bytes) -> str:
        return self.validators.get(peer_key) or f"follower {peer_key.hex()[:16]}"

    def is_validator(self, peer_key: bytes) -> bool:
        """Whether ``peer_key`` is in the validator set this transport was last given."""
        return peer_key in self.validators

    def outsiders(self) -> list[bytes]:
        """The connected peers outside the validator set (followers), sorted."""
        return sorted(k for k in self._peers if k not in self.validators)

    def set_validators(self, validators: Mapping[bytes, str]) -> None:
        """A new validator set (a set change came into force). A link whose peer moved
        into or out of the set is closed, so the peer redials and is admitted, rated and
        broadcast to as what it now is."""
        new = dict(validators)
        if new == self.validators:
            return
        changed = set(new).symmetric_difference(self.validators)
        self.validators.clear()
        self.validators.update(new)  # in place: the handshake's LinkParams holds this dict
        for key in changed:
            self._buckets.pop(key, None)
            conn = self._peers.get(key)
            if conn is not None:
                conn.close("the validator set changed")

    def stats(self, peer_key: bytes) -> PeerStats:
        """A snapshot of the peer's counters."""
        return replace(self._stats_for(peer_key))

    def open_connections(self) -> int:
        """Every open socket, including ones still in handshake or being deduplicated."""
        return len(self._open)

    def ban_remaining(self, peer_key: bytes) -> float:
        return self._policy.ban_remaining(peer_key, self._now())

    def misbehaviour_points(self, peer_key: bytes) -> float:
        """The key's score now (decayed); it is banned on reaching ``ban_threshold``."""
        return self._policy.points(peer_key, self._now())

    def report_misbehaviour(self, peer_key: bytes, points: float, reason: str) -> None:
        """For upper layers: e.g. a CONSENSUS payload that does not decode."""
        conn = self._peers.get(peer_key)
        if conn is not None:
            self._offend(conn, points, reason)
        elif self._policy.offend(peer_key, points, self._now()):
            log.warning("banned %s: %s", self.peer_name(peer_key), reason,
                        extra=event("peer_banned", peer=self.peer_name(peer_key), reason=reason,
                                    seconds=self.config.ban_seconds))

    def _stats_for(self, peer_key: bytes) -> PeerStats:
        return self._stats.setdefault(peer_key, PeerStats())

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _offend(self, conn: _Connection, points: float, reason: str) -> None:
        if self._policy.offend(conn.peer_key, points, self._now()):
            secs = self.config.ban_seconds
            log.warning("banning %s for %.0fs: %s", self.peer_name(conn.peer_key), secs, reason,
                        extra=event("peer_banned", peer=self.peer_name(conn.peer_key), reason=reason, seconds=secs))
            conn.close(f"banned: {reason}", abort=True)

    # --- connections -------------------------------------------------------------------
    async def _dial_loop(self, address: Address) -> None:
        backoff = Backoff(self.config.backoff_base, self.config.backoff_cap, self._rng)
        while not self._stopping:
            key = self._addr_keys.get(address)
            if key is not None:
                live = self._peers.get(key)
                if live is not None:  # connected (maybe inbound): wait for it to end
                    await live.closed.wait()
                    await asyncio.sleep(backoff.next())
                    continue
                banned_for = self._policy.ban_remaining(key, self._now())
                if banned_for > 0:
                    await asyncio.sleep(banned_for)
                    continue
            try:
                async with asyncio.timeout(self.config.handshake_timeout):
                    reader, writer = await asyncio.open_connection(*address)
            except (OSError, TimeoutError) as exc:
                log.debug("dial %s:%d failed: %s", *address, exc)
                await asyncio.sleep(backoff.next())
                continue
            outcome = await self._run_connection(reader, writer, outbound=True, address=address)
            if outcome.self_dial:
                log.info("%s:%d is our own address; not dialling it", *address)
                return
            if outcome.established:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # tracked so stop() can wait for it
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._stopping:
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = self._hosts.admit(host, self._now())
        if refusal is not None:  # nothing read, nothing computed: the socket just closes
            self.refused_by_budget += 1
            self._log_budget(refusal)
            writer.transport.abort()
            return
        failed = True
        try:
            outcome = await self._run_connection(reader, writer, outbound=False, address=None)
            failed = outcome.peer_key is None and not outcome.self_dial
        finally:
            self._hosts.release(host, self._now(), failed=failed)

    def _log_budget(self, refusal: str) -> None:
        now = time.monotonic()
        if now - self._budget_logged >= 10.0:  # a flood of refusals must not flood the log
            self._budget_logged = now
            log.warning("refused connections: %s (%d so far)", refusal, self.refused_by_budget,
                        extra=event("connections_refused", reason=refusal, total=self.refused_by_budget))

    async def _run_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, outbound: bool,
        address: Address | None,
    ) -> _Outcome:
        conn = _Connection(reader, writer, outbound, self.config.queue_size)
        self._open.add(conn)
        try:
            try:
                async with asyncio.timeout(self.config.handshake_timeout):
                    session = await self._handshake(conn)
            except ConnectedToSelf:
                conn.close("connected to ourselves")
                return _Outcome(self_dial=True)
            except (TransportError, asyncio.IncompleteReadError, OSError, TimeoutError) as exc:
                self.handshake_failures += 1
                if isinstance(exc, TimeoutError):
                    reason = "timed out"
                elif isinstance(exc, asyncio.IncompleteReadError):
                    reason = "peer closed the connection (it may have refused us)"
                else:
                    reason = str(exc)
                if not self._stopping:
                    log.warning("refused %s: handshake failed: %s", conn.label, reason,
                                extra=event("peer_refused", connection=conn.label, reason=reason))
                conn.close(f"handshake failed: {reason}")
                return _Outcome()
            key = session.peer_key
            conn.session = session
            if address is not None:
                self._addr_keys[address] = key
            if not self._register(conn, key):
                return _Outcome(peer_key=key)
            try:
                await self._read_loop(conn)
            except (OSError, ConnectionError) as exc:
                conn.close(f"read failed: {exc}")
            finally:
                self._unregister(conn)
            return _Outcome(peer_key=key, established=True)
        finally:
            conn.close(conn.reason or "connection finished")
            try:
                await conn.wait_shut()
            finally:  # even when stop() cancels us mid-shutdown
                self._open.discard(conn)

    async def _handshake(self, conn: _Connection) -> Session:
        """Initiator's side if we dialled, responder's if we accepted (node.peerlink)."""
        ephemeral = secrets.token_bytes(EPHEMERAL_SIZE)  # fresh per connection, then dropped
        if conn.outbound:
            initiator = Initiator(self._link, ephemeral)
            mine = initiator.ephemeral
            self._dialling.add(mine)
            try:
                await self._write_now(conn, FrameType.LINK_INIT, initiator.init())
                response = await self._read_handshake_frame(conn, FrameType.LINK_RESPONSE)
                finish, session = initiator.on_response(response.payload)
                await self._write_now(conn, FrameType.LINK_FINISH, finish)
                return session
            except (TransportError, asyncio.IncompleteReadError, OSError):
                if mine in self._dialled_self:
                    raise ConnectedToSelf("our own listener answered") from None
                raise
            finally:
                self._dialling.discard(mine)
                self._dialled_self.discard(mine)
        responder = Responder(self._link, ephemeral)
        init = await self._read_handshake_frame(conn, FrameType.LINK_INIT)
        try:
            claimed = responder.on_init(init.payload)  # chain, genesis, validator set: no crypto
        except ConnectedToSelf:
            theirs = Init.decode(init.payload).ephemeral
            if theirs not in self._dialling:  # not our dial: somebody claiming our key
                raise HandshakeFailed("peer claims our own key") from None
            self._dialled_self.add(theirs)
            raise
        if claimed not in self.validators:
            self._admit_outsider(claimed)
        banned_for = self._policy.ban_remaining(claimed, self._now())
        if banned_for > 0:
            raise HandshakeFailed(f"{self.peer_name(claimed)} is banned for another {banned_for:.0f}s")
        await self._write_now(conn, FrameType.LINK_RESPONSE, responder.respond())
        last = await self._read_handshake_frame(conn, FrameType.LINK_FINISH)
        return responder.on_finish(last.payload)

    def _admit_outsider(self, key: bytes) -> None:
        """Before any signature is spent on a follower's INIT: is one welcome now?"""
        c = self.config
        if c.outsider_keys and key not in c.outsider_keys:
            raise HandshakeFailed(f"key {key.hex()[:16]}.. is neither a validator nor an allowed follower")
        if len(self.outsiders()) >= c.max_outsiders:
            raise HandshakeFailed(f"already linked to {c.max_outsiders} followers")

    async def _write_now(self, conn: _Connection, frame_type: FrameType, payload: bytes) -> None:
        conn.writer.write(encode_frame(frame_type, payload, HANDSHAKE_MAX_FRAME_SIZE))
        await conn.writer.drain()

    async def _read_handshake_frame(self, conn: _Connection, expected: FrameType) -> Frame:
        # Exact reads, so whatever the peer sends after its last handshake frame stays
        # buffered for the main loop, which opens it under the session key.
        frame_type, size = parse_header(
            await conn.reader.readexactly(HEADER_SIZE), HANDSHAKE_MAX_FRAME_SIZE
        )
        if frame_type != expected:
            raise HandshakeFailed(f"expected {expected.name}, got {frame_type.name}")
        return Frame(frame_type, await conn.reader.readexactly(size))

    def _replaces(self, existing: _Connection, new: _Connection, key: bytes) -> bool:
        """Does ``new`` replace ``existing`` for the same peer? Both ends agree, because
        each connection has one dialler and both ends see the same two connections."""
        def dialler(c: _Connection) -> bytes:
            return self.public_key if c.outbound else key

        if dialler(existing) == dialler(new):  # it redialled: it thinks the old one died
            return True
        if self._now() - existing.established_at > self.config.duplicate_grace:
            return True
        # A simultaneous dial: keep the connection dialled by the lower key.
        return dialler(new) == min(self.public_key, key)

    def _register(self, conn: _Connection, key: bytes) -> bool:
        if self._stopping:
            conn.close("transport stopping")
            return False
        existing = self._peers.get(key)
        if existing is not None and not self._replaces(existing, conn, key):
            conn.close("duplicate connection; keeping the existing one")
            return False
        outsider = key not in self.validators
        if outsider and existing is None and len(self.outsiders()) >= self.config.max_outsiders:
            conn.close(f"already linked to {self.config.max_outsiders} followers")
            return False
        now = self._now()
        conn.peer_key, conn.established_at, conn.last_rx = key, now, now
        stats = self._stats_for(key)
        if existing is not None:
            while not existing.queue.empty():  # hand over what was not yet written
                conn.queue.put_nowait(existing.queue.get_nowait())
            conn.queued_bytes, existing.queued_bytes = existing.queued_bytes, 0
            del self._peers[key]
            existing.close("replaced by another connection to the same peer")
        else:
            stats.connects += 1
        self._peers[key] = conn
        c = self.config
        if outsider:
            assert conn.session is not None
            conn.session.opener.limit(c.outsider_max_frame_size)
            self._buckets.setdefault(key, TokenBucket(c.outsider_frames_per_second, c.outsider_frame_burst, now))
        else:
            self._buckets.setdefault(key, TokenBucket(c.max_frames_per_second, c.frame_burst, now))
        conn.tasks.append(asyncio.create_task(self._write_loop(conn)))
        conn.tasks.append(asyncio.create_task(self._keepalive(conn)))
        direction = "out" if conn.outbound else "in"
        log.info("connected to %s (%s)", self.peer_name(key), direction,
                 extra=event("peer_connected", peer=self.peer_name(key), direction=direction))
        if existing is None and self.on_peer_up is not None:
            self.on_peer_up(key)
        return True

    def _unregister(self, conn: _Connection) -> None:
        key = conn.peer_key
        if self._peers.get(key) is not conn:  # already replaced by a duplicate
            return
        del self._peers[key]
        self._stats_for(key).disconnects += 1
        log.info("disconnected from %s: %s", self.peer_name(key), conn.reason or "closed",
                 extra=event("peer_disconnected", peer=self.peer_name(key), reason=conn.reason or "closed"))
        if self.on_peer_down is not None:
            self.on_peer_down(key)

    # --- per-connection tasks ----------------------------------------------------------
    async def _read_loop(self, conn: _Connection) -> None:
        assert conn.session is not None
        opener = conn.session.opener
        stats = self._stats_for(conn.peer_key)
        while not conn.closed.is_set():
            data = await conn.reader.read(self.config.read_chunk)
            if not data:
                conn.close(conn.reason or "peer closed the connection")
                return
            conn.last_rx = self._now()
            stats.bytes_in += len(data)
            try:
                frames = opener.feed(data)
            except LinkCorrupted as exc:
                # Anyone on the path can write bytes that fail to open: not the peer's fault.
                stats.link_errors += 1
                log.warning("dropping the link to %s: %s", self.peer_name(conn.peer_key), exc,
                            extra=event("peer_link_dropped", peer=self.peer_name(conn.peer_key), reason=str(exc)))
                conn.close(str(exc), abort=True)
                return
            except BadFrame as exc:  # it opened, so the peer itself sent it
                stats.bad_frames += 1
                self._offend(conn, self.config.bad_frame_penalty, str(exc))
                conn.close(str(exc), abort=True)  # the stream cannot be resynchronised
                return
            for frame in frames:
                if conn.closed.is_set():
                    return
                await self._dispatch(conn, frame, stats)

    async def _dispatch(self, conn: _Connection, frame: Frame, stats: PeerStats) -> None:
        stats.frames_in += 1
        if not self._buckets[conn.peer_key].allow(self._now()):
            stats.rate_limited += 1
            self._offend(conn, self.config.rate_penalty, "too many frames per second")
            return
        if frame.type is FrameType.PING:
            if len(frame.payload) > MAX_PING_PAYLOAD:
                stats.bad_frames += 1
                self._offend(conn, self.config.bad_frame_penalty, "oversized PING")
            else:
                self._enqueue(conn, (FrameType.PONG, frame.payload))
        elif frame.type is FrameType.PONG:
            pass  # liveness is any inbound byte; last_rx is already updated
        elif frame.type in CONTROL_TYPES:
            stats.bad_frames += 1
            reason = f"{frame.type.name} after the handshake"
            self._offend(conn, self.config.bad_frame_penalty, reason)
        elif self.on_frame is not None:
            try:
                result = self.on_frame(conn.peer_key, frame.type, frame.payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                name = self.peer_name(conn.peer_key)
                log.exception("on_frame failed on a frame from %s", name)

    async def _write_loop(self, conn: _Connection) -> None:
        assert conn.session is not None
        sealer = conn.session.sealer
        stats = self._stats_for(conn.peer_key)
        while True:
            frame_type, payload = await conn.queue.get()
            conn.queued_bytes -= len(payload)
            data = sealer.seal(frame_type, payload)
            try:
                conn.writer.write(data)
                async with asyncio.timeout(self.config.write_timeout):
                    await conn.writer.drain()
            except TimeoutError:
                secs = self.config.write_timeout
                conn.close(f"slow peer: writes not drained within {secs}s", abort=True)
                return
            except (OSError, ConnectionError) as exc:
                conn.close(f"write failed: {exc}")
                return
            stats.frames_out += 1
            stats.bytes_out += len(data)

    async def _keepalive(self, conn: _Connection) -> None:
        counter = 0
        while True:
            await asyncio.sleep(self.config.ping_interval)
            idle = self._now() - conn.last_rx
            if idle > self.config.dead_timeout:
                conn.close(f"dead peer: nothing received for {idle:.1f}s", abort=True)
                return
            counter += 1
            ping = counter.to_bytes(8, "big")
            with contextlib.suppress(asyncio.QueueFull):  # a full queue proves nothing: skip
                conn.queue.put_nowait((FrameType.PING, ping))
                conn.queued_bytes += len(ping)
