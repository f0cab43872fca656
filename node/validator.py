"""The validator process: the consensus core, the ledger and the network, wired.

A thin asyncio driver. The consensus core decides, the ledger rules judge, the store
keeps; this module only moves bytes between them in the order the core requires: a
message is in the signing log before it is sent, a decided block is on disk before the
next input.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from contracts import ContractError
from ledger.block import CommitCertificate
from ledger.chain import Chain
from ledger.crypto import SigningKey
from ledger.elections import Elections
from ledger.errors import BadTransaction, LedgerError
from ledger.files import load_genesis
from ledger.hashing import keccak256
from ledger.rules import elections_at
from node.admission import BallotAdmission
from node.app import LedgerApplication
from node.background import BackgroundThreads
from node.backup import ADMIN_SOCKET, AdminServer, BackupSource, RestoreGuard, state_snapshot_of
from node.blocksync import BlockSync, SyncedBlock
from node.compact import (
    SentProposals,
    compact_proposal,
    decode_proposal_request,
    encode_proposal_request,
    rebuild_proposal,
)
from node.config import ConfigError, NodeConfig, load_node_key, split_address
from node.consensus.core import (
    Broadcast,
    ConsensusCore,
    Decide,
    Output,
    Persist,
    RoundChange,
    ScheduleTimeout,
    Step,
    Timeout,
    TimeoutParams,
    TimerKind,
)
from node.consensus.messages import Message, Proposal, decode_message, encode_message
from node.evm import LevelStateDB, open_executor
from node.followers import OUTSIDER_FRAME_PENALTY, FollowerGate, FollowerReadOnly, ReadOnlyAdmission
from node.frames import FrameType, decode_batch, encode_batch
from node.jsonrpc import hex_param
from node.logs import event
from node.mempool import Mempool
from node.metrics import NodeMetrics
from node.precheck import BallotPrechecker
from node.read_pool import ReadPool
from node.reporter import NodeReporter
from node.rpc_table import build_rpc_table
from node.rpc_thread import ConsensusLoop, RpcThread
from node.transport import PeerTransport, TransportConfig
from node.txpool import MAX_TX_BYTES, TxPool
from node.wal import SigningLog

log = logging.getLogger("node.validator")

GOSSIP_FLUSH_S = 0.01
MAX_GOSSIP_BATCH = 2000
# Gossiped ballots being checked at once; past this a peer's next frames wait for them.
MAX_GOSSIP_CHECKING = 2 * MAX_GOSSIP_BATCH
HELD_BEFORE_START = frozenset({FrameType.CONSENSUS, FrameType.COMPACT_PROPOSAL, FrameType.SYNC_RESPONSE})
BAD_MESSAGE_PENALTY = 20.0
# Consensus frames held while the core is not started yet (peers may race our start-up).
MAX_EARLY_FRAMES = 1024
MAX_EARLY_BYTES = 16 * 1024 * 1024
EXIT_HALTED = 3  # the process's exit code after a persistence failure
# A node that does not vote (a follower) hears of new blocks only by asking: this often.
FOLLOW_POLL_S = 0.25
# How often library threads started since (LevelDB's, on its first flush) are looked for.
BACKGROUND_LOOK_S = 2.0
MAX_TIME_EVENT_WAIT_S = 3600.0  # a far window edge is looked at again after this long
# Allocations between young-generation collections in a node process (the default, 700,
# runs one every few milliseconds under load).
YOUNG_COLLECTION_THRESHOLD = 20_000


def _timeout_params(config: NodeConfig) -> TimeoutParams:
    t = config.timeouts
    return TimeoutParams(
        propose=t.propose_ms / 1000,
        propose_delta=t.delta_ms / 1000,
        prevote=t.prevote_ms / 1000,
        prevote_delta=t.delta_ms / 1000,
        precommit=t.precommit_ms / 1000,
        precommit_delta=t.delta_ms / 1000,
        commit=t.block_interval_ms / 1000,
        checkpoint=float(t.checkpoint_interval_s) if t.checkpoint_interval_s else None,
    )


# Shifts this process's clock: how the fault suite runs a validator whose clock is off.
CLOCK_OFFSET_ENV = "BALLOT_LEDGER_CLOCK_OFFSET_MS"
_CLOCK_OFFSET_MS = int(os.environ.get(CLOCK_OFFSET_ENV) or 0)


def wall_clock_ms() -> int:
    return int(time.time() * 1000) + _CLOCK_OFFSET_MS


class ValidatorNode:
    def __init__(self, config: NodeConfig, key: SigningKey | None = None) -> None:
        """``key``: the node's key when the caller already opened it (a keystore's
        passphrase is asked for once, at start); else read here."""
        self.config = config
        self.genesis = load_genesis(config.genesis_file)  # refused by its size before it is read
        key = key or load_node_key(config)
        self.public_key = key.public_key
        self.follower = config.role == "follower"
        # Restored from a backup: no vote until caught up (node.backup.RestoreGuard).
        self.restore_guard = RestoreGuard(config.data_dir)
        self._key = key
        # The contract state has its own LevelDB (synced writes) beside the chain's.
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = (
            open_executor(self.genesis, path=config.data_dir / "evm") if self.genesis.params.contracts else None
        )
        self.chain = Chain(config.data_dir / "db", self.genesis, self.engine)
        if self.follower and self._in_set(self.chain.store.height + 1):
            # Its links would pass for that validator's and displace them.
            raise ConfigError(f"{config.key_file}: a follower's key must not be a validator's key")
        self.wal = SigningLog(config.data_dir / "wal")
        self.mempool = Mempool(
            self.genesis, self.chain.store, max_size=config.mempool_max,
            elections=self.tip_elections,
        )
        self.chain.proofs = self.mempool.proofs  # one cache of proven credential paths
        self.txpool = TxPool(self.engine, self._tip_state) if self.engine is not None else None
        self.app = LedgerApplication(self.chain, self.mempool, key.public_key, wall_clock_ms, txpool=self.txpool)
        self.timeouts = _timeout_params(config)
        self.core = self._make_core(None if self.follower or self.restore_guard.pending else key)
        host, port = split_address(config.p2p_listen)
        self.gate = FollowerGate(config.followers)
        self.transport = PeerTransport(
            key,
            chain_id=self.genesis.chain_id,
            genesis_hash=self.genesis.hash(),
            validators=self._linked_validators(),
            host=host,
            port=port,
            on_frame=self.on_frame,
            config=TransportConfig(max_outsiders=config.followers.max_followers,
                                   outsider_keys=frozenset(config.followers.follower_keys)),
            on_peer_up=self._on_peer_up,
        )
        # One pool of worker processes checks ballots for block sync and for admission.
        self.prechecker = BallotPrechecker(self.genesis, config.admission_workers or None)
        self.admission = (ReadOnlyAdmission if self.follower else BallotAdmission)(
            self.mempool, wall_clock_ms, self.prechecker if config.admission_workers else None
        )
        # Gossiped ballots still being checked, by task and by tracking code: a compact
        # proposal may name them before they reach the mempool.
        self._gossip_checking: dict[asyncio.Task[object], tuple[bytes, ...]] = {}
        self._arriving: dict[bytes, bytes] = {}
        self.metrics = NodeMetrics()
        self.reporter = NodeReporter(self.metrics, refusal_interval_s=config.log_refusals_every_s,
                                     max_tracked_ballots=config.mempool_max)
        self.admission.on_answers = self.reporter.admitted
        self.wal.on_synced = self.metrics.wal_fsync.observe
        self._via_sync = False  # a Decide comes from block sync, not this validator's votes
        self.rpc = self._make_rpc(config)
        self.sync = BlockSync(self.genesis, self.chain.store, self.prechecker, elections=self.tip_elections)
        self.admin = AdminServer(config.data_dir / ADMIN_SOCKET, BackupSource(
            config.name, self.genesis, self.chain.store, state_snapshot_of(self.engine)))
        self._gossip: list[bytes] = []
        self._gossip_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = False
        self._closing = False
        self._early: deque[tuple[bytes, FrameType, bytes]] = deque()
        self._sent_proposals = SentProposals()
        self._early_bytes = 0
        self._time_event: asyncio.TimerHandle | None = None
        self.failure: BaseException | None = None  # set once: the validator halted on it
        self.counters: dict[str, int] = {}
        self.started_at = time.time()
        self._watch_state()

    def _watch_state(self) -> None:
        """The state gauges, read by a scrape on the RPC's thread: each reads one attribute."""
        store, reporter = self.chain.store, self.reporter
        self.metrics.info.labels(self.config.name, self.genesis.chain_id,
                                 "" if self.core.index is None else str(self.core.index)).set(1)
        self.metrics.read_state(
            height=lambda: store.height, round_=lambda: self.core.round, step=lambda: self.core.step,
            peers=self.transport.peer_count, mempool=lambda: len(self.mempool),
            behind=lambda: reporter.behind(store.height),
            synced=lambda: 0 if reporter.syncing or reporter.behind(store.height) > 1 else 1,
        )

    def _make_core(self, key: SigningKey | None) -> ConsensusCore:
        """The consensus core at the height after the stored tip, told what this validator
        already signed there (so a restart re-sends it and signs nothing conflicting).
        It votes at the heights where ``key`` is in the set in force (never if None)."""
        height = self.chain.store.height + 1
        signed = [decode_message(r) for r in self.wal.records(height)]
        return ConsensusCore(
            chain_id=self.genesis.chain_id,
            validators=self.chain.validators_at(height),
            index=None,
            key=key,
            height=height,
            app=self.app,
            timeouts=self.timeouts,
            signed_log=signed,
            validators_at=self.chain.validators_at,
        )

    def _in_set(self, height: int) -> bool:
        return self.chain.validators_at(height).index_of(self.public_key) is not None

    def _linked_validators(self) -> dict[bytes, str]:
        """The keys the transport treats as validators: the sets of the height being
        decided and the next (a newly added validator is linked as one in time)."""
        height = self.chain.store.height + 1
        return {v.public_key: v.name for h in (height, height + 1) for v in self.chain.validators_at(h).validators}

    def _make_rpc(self, config: NodeConfig) -> RpcThread:
        """The RPC never runs on this loop: it has its own thread and loop, costly reads a
        worker thread (node.rpc_thread, node.read_pool); submissions come back here."""
        rpc_host, rpc_port = split_address(config.rpc_listen)
        limits = config.rpc_limits
        self.background = BackgroundThreads()
        self.read_pool = ReadPool(max_queued=limits.read_queue, max_per_client=limits.read_queue_per_client,
                                  share=limits.read_share)
        self.consensus_loop = ConsensusLoop()
        methods = build_rpc_table(self, limits, self.read_pool, engine=self.engine, consensus=self.consensus_loop,
                                  send_raw_transaction=self._send_raw_transaction if self.engine else None)
        methods.observe = self.metrics.observe_rpc
        return RpcThread(methods, rpc_host, rpc_port, config.http_limits, metrics=self.metrics.render)

    def _tip_state(self) -> tuple[bytes, int]:
        tip = self.chain.store.tip
        return tip.state_root, tip.height

    async def _send_raw_transaction(self, data: str) -> str:
        """eth_sendRawTransaction: an authority transaction into the pool, then to peers."""
        assert self.txpool is not None
        if self.follower:
            raise FollowerReadOnly("this node is a follower: send transactions to a validator")
        raw = hex_param(data, "transaction", max_size=MAX_TX_BYTES)
        tx_hash = self.txpool.admit(raw, wall_clock_ms())
        self.transport.broadcast(FrameType.EVM_TX, raw)
        self._work_arrived()
        return "0x" + tx_hash.hex()

    def tip_elections(self) -> Elections:
        """The elections defined on the committed state, with their phases."""
        return elections_at(self.genesis, self.chain.store.tip.state_root, self.engine)

    # --- lifecycle ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> int:
        """Serve until ``stop`` is set or the validator halts; 0 for a clean stop, else
        :data:`EXIT_HALTED` (the cause is logged)."""
        self._stop = stop
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()
        return EXIT_HALTED if self.failure is not None else 0

    async def start(self) -> None:
        self._loop = self.consensus_loop.loop = asyncio.get_running_loop()
        await self.transport.start()
        self.transport.connect_to(split_address(p.address) for p in self.config.peers)
        await self.rpc.start()
        await self.admin.start()
        self.reporter.start(self._loop)
        log.info("%s serving: p2p %s, rpc %s, height %d", self.config.name, self.config.p2p_listen,
                 self.config.rpc_listen, self.chain.store.height,
                 extra=event("node_started", name=self.config.name, p2p=self.config.p2p_listen,
                             rpc=self.config.rpc_listen, height=self.chain.store.height))
        self._perform(self.core.start())
        self._started = True
        self._loop.call_later(FOLLOW_POLL_S, self._follow)
        self._lower_background()
        self._arm_time_event()
        for peer in self.transport.peers():
            self._on_peer_up(peer)
        early, self._early = self._early, deque()
        self._early_bytes = 0
        for peer, frame_type, payload in early:
            await self.on_frame(peer, frame_type, payload)

    async def close(self) -> None:
        self._closing = True
        await self.admin.stop()
        self.reporter.close()
        if self._time_event is not None:
            self._time_event.cancel()
        await self.rpc.stop()
        self.read_pool.close()
        await self.transport.stop()
        for task in self._gossip_checking:
            task.cancel()
        self.prechecker.close()
        self.wal.close()
        self.chain.close()
        if self.engine is not None and isinstance(self.engine.db, LevelStateDB):
            self.engine.db.close()
        log.info("%s stopped at height %d", self.config.name, self.chain.store.height,
                 extra=event("node_stopped", name=self.config.name, height=self.chain.store.height))

    def _halt(self, what: str, exc: BaseException) -> None:
        """Stop for good: nothing more is sent or decided, and the process exits non-zero.

        The core already counts a message as signed when it asks for it to be persisted;
        if the write failed, sending it (now, or by a later gossip) would let a restart,
        which knows only the log, sign a conflicting one."""
        if self.failure is None:
            self.failure = exc
            log.critical("%s: %s failed (%s: %s); stopping", self.config.name, what, type(exc).__name__, exc,
                         extra=event("node_halted", name=self.config.name, what=what, error=type(exc).__name__))
        if self._stop is not None:
            self._stop.set()

    # --- performing the core's outputs ----------------------------------------------------
    def _perform(self, outputs: list[Output]) -> None:
        for out in outputs:
            if self.failure is not None:
                return  # halted: the rest of this list (and everything after) is dropped
            if isinstance(out, Persist):
                try:
                    self.wal.append(out.message.height, encode_message(out.message))
                except Exception as exc:  # any disk or database fault
                    self._halt("the signing log write", exc)
            elif isinstance(out, Broadcast):
                if isinstance(out.message, Proposal):
                    self.reporter.proposal_seen(out.message.height, out.message.round)
                    self._broadcast_proposal(out.message)
                else:
                    self.transport.broadcast(FrameType.CONSENSUS, encode_message(out.message))
            elif isinstance(out, ScheduleTimeout):
                assert self._loop is not None
                self._loop.call_later(self._timer_delay(out), self._on_timer, out.timeout)
            elif isinstance(out, Decide):
                self._commit(out.block, out.certificate)
            elif isinstance(out, RoundChange):
                self.reporter.round_changed(out)

    def _timer_delay(self, out: ScheduleTimeout) -> float:
        """The pause after a commit (``block_interval_ms``) lets the next block fill; with a
        full block's worth already pending it would only hold a backlog back longer."""
        if out.step == TimerKind.NEW_HEIGHT and len(self.mempool) >= self.app.max_block_ballots:
            return 0.0
        return out.delay_s

    def _on_timer(self, timeout: Timeout) -> None:
        # A timeout due while the node closes would build a block from a closed store.
        if self.failure is None and not self._closing:
            self._perform(self.core.on_timeout(timeout))

    def _commit(self, block: bytes, certificate: CommitCertificate) -> None:
        try:
            effects = self.app.commit(block, certificate)
            self.wal.prune_below(certificate.height + 1)
        except Exception as exc:
            # The core only decides blocks the rules accepted and a quorum certified;
            # failing here means the disk or the code is broken: stop rather than fork.
            self._halt(f"committing decided block {certificate.height}", exc)
            return
        self._bump("blocks_committed")
        self.transport.set_validators(self._linked_validators())
        self.reporter.committed(certificate.height, certificate.round, certificate.block_hash, effects.ballots,
                                synced=self._via_sync)
        self._arm_time_event()
        if self.restore_guard.caught_up(certificate.height) and self._loop is not None:
            self._loop.call_soon(self._vote_again)

    def _vote_again(self) -> None:
        """A restored validator has caught up: a core with its key, at the next height."""
        if self.follower or self.failure is not None:
            return
        self.core = self._make_core(self._key)  # it votes where its key is in the set in force
        log.info("%s: restored chain caught up at height %d; voting from height %d", self.config.name,
                 self.chain.store.height, self.core.height)
        self._perform(self.core.start())

    # --- network --------------------------------------------------------------------------
    async def on_frame(self, peer: bytes, frame_type: FrameType, payload: bytes) -> None:
        """Every frame a peer sends (the transport's ``on_frame``)."""
        if self.failure is not None:
            return
        if not self.transport.is_validator(peer) and not self.gate.admits(frame_type):
            # A follower only asks for blocks; nothing it sends is a vote, a ballot or a
            # transaction to this node.
            self._bump("follower_frames_refused")
            self.transport.report_misbehaviour(peer, OUTSIDER_FRAME_PENALTY, f"{frame_type.name} from a follower")
            return
        if not self._started and frame_type in HELD_BEFORE_START:
            self._hold(peer, frame_type, payload)
            return
        try:
            if frame_type == FrameType.CONSENSUS:
                self._on_consensus(peer, decode_message(payload))
            elif frame_type == FrameType.COMPACT_PROPOSAL:
                self._on_compact_proposal(peer, payload)
            elif frame_type == FrameType.PROPOSAL_REQUEST:
                self._serve_proposal(peer, payload)
            elif frame_type == FrameType.TXS:
                await self._admit_gossip(decode_batch(payload, max_items=MAX_GOSSIP_BATCH))
            elif frame_type == FrameType.EVM_TX and self.txpool is not None:
                with contextlib.suppress(ContractError, BadTransaction):  # stale by now: no fault of the peer
                    self.txpool.admit(payload, wall_clock_ms())
                    self._work_arrived()
            elif frame_type == FrameType.SYNC_REQUEST:
                self._serve_sync(peer, payload)
            elif frame_type == FrameType.SYNC_RESPONSE:
                await self._on_sync_response(peer, payload)
        except LedgerError as exc:
            self._bump(f"bad_{frame_type.name.lower()}")
            self.transport.report_misbehaviour(peer, BAD_MESSAGE_PENALTY, f"{frame_type.name}: {exc}")

    def _hold(self, peer: bytes, frame_type: FrameType, payload: bytes) -> None:
        """A peer raced our start-up: keep its consensus messages (bounded) for after it.
        A sync response cannot be one we asked for yet."""
        if frame_type == FrameType.SYNC_RESPONSE or len(self._early) >= MAX_EARLY_FRAMES or (
            self._early_bytes + len(payload) > MAX_EARLY_BYTES
        ):
            self._bump("dropped_before_start")
            return
        self._early.append((peer, frame_type, payload))
        self._early_bytes += len(payload)

    def _on_consensus(self, peer: bytes, message: Message) -> None:
        self.restore_guard.heard(message.height)
        if isinstance(message, Proposal):
            self.reporter.proposal_seen(message.height, message.round)
        if message.height > self.core.height:
            self.reporter.peer_ahead(message.height)
            self._request_sync(peer)
        self._perform(self.core.on_message(message))

    # --- proposals by tracking code (node.compact) ----------------------------------------
    def _broadcast_proposal(self, proposal: Proposal) -> None:
        """Peers get the block's ballots named by tracking code: they hold the ballots
        already, from gossip. The whole proposal stays here for any peer that asks."""
        self._sent_proposals.keep(proposal.height, proposal.round, encode_message(proposal))
        self._flush_gossip()  # this node's own new ballots go ahead of the proposal on every link
        self.transport.broadcast(FrameType.COMPACT_PROPOSAL, compact_proposal(proposal, self._tracking_code))

    def _tracking_code(self, raw: bytes) -> bytes:
        known = self.mempool.admitted.get(raw)  # a block's ballots come from the mempool
        return known.tracking_code if known is not None else keccak256(raw)

    def _on_compact_proposal(self, peer: bytes, payload: bytes) -> None:
        rebuilt = rebuild_proposal(payload, self._ballot_by_code)
        if rebuilt.proposal is not None:
            self._count_proposal("rebuilt")
            self._on_consensus(peer, rebuilt.proposal)
        elif rebuilt.height == self.core.height:
            self._count_proposal("asked_whole")
            request = encode_proposal_request(rebuilt.height, rebuilt.round)
            self.transport.send(peer, FrameType.PROPOSAL_REQUEST, request)
        elif rebuilt.height > self.core.height:  # this node is behind: block sync, not this proposal
            self.reporter.peer_ahead(rebuilt.height)
            self._request_sync(peer)

    def _count_proposal(self, how: str) -> None:
        self._bump(f"proposals_{how}")  # the status counters
        self.metrics.proposals.labels(how).inc()

    def _ballot_by_code(self, code: bytes) -> bytes | None:
        """A ballot in the mempool, or gossiped and still being checked (the block's
        validation then checks it in full, as it does any ballot it has not admitted)."""
        raw = self.mempool.pending_bytes(code)
        return raw if raw is not None else self._arriving.get(code)

    def _serve_proposal(self, peer: bytes, payload: bytes) -> None:
        height, round_ = decode_proposal_request(payload)
        message = self._sent_proposals.answer(peer, height, round_)
        if message is not None:
            self._count_proposal("sent_whole")
            self.transport.send(peer, FrameType.CONSENSUS, message)

    async def _admit_gossip(self, raws: Sequence[bytes]) -> None:
        """A peer's ballots into the mempool (refusals are no fault of the peer: a ballot
        may have gone final or stale on the way). They are checked while this peer's
        next frames, its votes among them, go on; only while more than
        :data:`MAX_GOSSIP_CHECKING` gossiped ballots are being checked do they wait."""
        task: asyncio.Task[object] = asyncio.create_task(self.admission.admit(raws))
        codes = tuple(keccak256(raw) for raw in raws)
        self._arriving.update(zip(codes, raws, strict=True))
        self._gossip_checking[task] = codes
        task.add_done_callback(self._gossip_checked)
        if sum(map(len, self._gossip_checking.values())) > MAX_GOSSIP_CHECKING:
            await asyncio.wait([task])

    def _gossip_checked(self, task: asyncio.Task[object]) -> None:
        for code in self._gossip_checking.pop(task, ()):
            self._arriving.pop(code, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("admitting gossiped ballots failed", exc_info=task.exception())
        self._work_arrived()

    def gossip_ballots(self, raws: list[bytes]) -> None:
        """Send newly admitted ballots to every peer, batched over a few milliseconds."""
        self._work_arrived()
        self._gossip.extend(raws)
        if not self._gossip_scheduled and self._loop is not None:
            self._gossip_scheduled = True
            self._loop.call_later(GOSSIP_FLUSH_S, self._flush_gossip)

    def _flush_gossip(self) -> None:
        self._gossip_scheduled = False
        pending, self._gossip = self._gossip, []
        for i in range(0, len(pending), MAX_GOSSIP_BATCH):
            self.transport.broadcast(FrameType.TXS, encode_batch(pending[i : i + MAX_GOSSIP_BATCH]))

    # --- quiet chain: a height starts when there is work (node.consensus.core) -----------
    def _work_arrived(self) -> None:
        """Wake a core waiting for work if the mempool, the pool or the clock has some."""
        if self.failure is None and self._started and not self._closing and self.core.step == Step.WAIT and (
            self.app.has_work(self.core.height)
        ):
            self._perform(self.core.on_work())

    def _arm_time_event(self) -> None:
        """Wake at the next election window edge, so a block records it when it passes."""
        if self._time_event is not None:
            self._time_event.cancel()
            self._time_event = None
        at_ms = self.app.next_time_event_ms()
        if at_ms is None or self._loop is None:
            return
        delay = min(max(at_ms - wall_clock_ms(), 0) / 1000 + 0.001, MAX_TIME_EVENT_WAIT_S)
        self._time_event = self._loop.call_later(delay, self._on_time_event)

    def _on_time_event(self) -> None:
        self._time_event = None
        self._work_arrived()
        self._arm_time_event()

    # --- block sync (node.blocksync) ------------------------------------------------------
    def _serve_sync(self, peer: bytes, payload: bytes) -> None:
        """Answer a sync request; a follower's only within its budget (node.followers)."""
        follower = not self.transport.is_validator(peer)
        if follower and not self.gate.may_serve(peer, self.transport.outsiders()):
            self._bump("follower_sync_over_budget")
            return
        response = self.sync.serve(payload)
        if follower:
            self.gate.charge(peer, len(response))
        self.transport.send(peer, FrameType.SYNC_RESPONSE, response)

    def _lower_background(self) -> None:
        """Library threads (LevelDB's flushes and compactions) below the consensus loop."""
        if self._closing:
            return
        assert self._loop is not None
        self.background.lower_new()
        self._loop.call_later(BACKGROUND_LOOK_S, self._lower_background)

    def _follow(self) -> None:
        """Not voting at this height: no consensus traffic tells us of new blocks, so ask a
        validator (in turn) for what follows our tip."""
        if self.failure is not None or self._closing:
            return
        assert self._loop is not None
        self._loop.call_later(FOLLOW_POLL_S, self._follow)
        if self.core.index is not None:
            return
        peers = [p for p in self.transport.peers() if self.transport.is_validator(p)]
        if peers:
            self._request_sync(peers[self.chain.store.height % len(peers)])
    def _on_peer_up(self, peer: bytes) -> None:
        """Ask a newly connected peer for blocks past our tip: on a quiet chain no vote
        may come to show that we fell behind while down or cut off."""
        if self._started and self.failure is None and self.transport.is_validator(peer):
            self._request_sync(peer, force=True)

    def _request_sync(self, peer: bytes, *, force: bool = False) -> None:
        payload = self.sync.request(force=force)
        if payload is not None:
            self.transport.send(peer, FrameType.SYNC_REQUEST, payload)
            self._bump("sync_requests")

    async def _on_sync_response(self, peer: bytes, payload: bytes) -> None:
        outcome = await self.sync.receive(payload, self._decide_synced)
        if outcome.applied:
            self._bump("blocks_synced", outcome.applied)
        self.reporter.sync_received(outcome.applied, outcome.ask_more, self.chain.store.height)
        if outcome.ask_more and self.failure is None:
            self._request_sync(peer, force=True)

    def _decide_synced(self, synced: SyncedBlock) -> bool:
        """Hand a fetched block to the core (which checks it and its certificate); True if
        the chain grew by it."""
        if self.failure is not None:
            return True  # halted meanwhile: no fault of the peer
        # Checked here with the workers' results; the core's own check is then answered
        # from the application's cache.
        if not self.app.validate_block(synced.height, synced.block, admitted=synced.admitted):
            return False
        before = self.chain.store.height
        self._via_sync = True
        try:
            self._perform(self.core.on_commit(synced.block, synced.certificate))
        finally:
            self._via_sync = False
        return self.chain.store.height > before or self.failure is not None

    # --- status ---------------------------------------------------------------------------
    def _bump(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    def status(self) -> dict[str, Any]:
        store = self.chain.store
        return {
            "name": self.config.name,
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash().hex(),
            "role": self.config.role,
            "public_key": self.public_key.hex(),
            "validator_index": self.core.index,
            "height": store.height,
            "tip_hash": store.tip.block_hash.hex(),
            "log_size": store.log_size,
            "round": self.core.round,
            "step": self.core.step.name.lower(),
            "peers": sorted(self.transport.peer_name(p) for p in self.transport.peers()),
            "mempool": len(self.mempool),
            "check_workers": {"running": len(self.prechecker.worker_pids()), "restarts": self.prechecker.restarts},
            "consensus": dict(self.core.stats),
            "counters": dict(self.counters),
            "uptime_s": round(time.time() - self.started_at, 1),
        }


async def run_node(config: NodeConfig, key: SigningKey | None = None) -> int:
    """Run one validator until SIGINT or SIGTERM; the process's exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node = ValidatorNode(config, key)
    settle_heap()
    return await node.run(stop)


def settle_heap() -> None:
    """Keep the cyclic collector's pauses off the consensus loop in a node process.

    A full collection rescans every container alive, and a started node holds some
    hundred thousand that live as long as it does (modules, the EVM, genesis, caches);
    under load those rescans stalled the loop 60 to 300 ms several times a minute
    and freed nothing. They are frozen once the node is built (never scanned again),
    and young objects are collected less often, in larger and cheaper batches. Only
    for the process that runs one node until it exits: frozen objects are never
    collected, which a process that builds many nodes (a test run) cannot afford.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)
