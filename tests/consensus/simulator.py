"""A deterministic discrete-event simulator for the consensus core.

N validators each run their own :class:`ConsensusCore` over a seeded, hostile network
(delays, drops, duplicates, reordering, partitions that heal), crash and restart (a
restarted node keeps only what it Persisted and the blocks it committed), and up to f
Byzantine validators. Blocks are real ledger blocks: built with ``assemble_block`` and
checked with ``apply_block`` against an in-memory view.

Every run checks: agreement, validity (each decided block passes ``apply_block`` on the
decider's chain and its certificate passes ``CommitCertificate.check``), that no honest
validator signed two different messages for one (height, round, kind), and progress: the
target height is reached within a bounded time after GST (global stabilisation time: the
network is synchronous, partitions healed and every non-crashed honest validator up).

It also holds every honest vote to the rule that justifies it, judged from outside the
core: from what was actually sent on the network and from the validator's own signed
votes (its lock is its latest non-nil precommit of the height, L36-40), never from the
core's own state:

* ``L22``: a non-nil prevote is for a value proposed in that round;
* ``L23/L29``: a validator locked on v at round lr prevotes another value v' only for a
  proposal of v' whose valid round vr is at least lr, with 2f+1 prevotes for v' sent in vr;
* ``L36``: a non-nil precommit has 2f+1 prevotes for its value sent in its round.

With ``Schedule.changes`` the validator set changes mid-run (ledger.validators): extra
nodes start as followers, a stand-in for the registry (:class:`SimRegistry`) carries the
changes at fixed heights, every core follows the set in force at each height, and each
vote and certificate is judged by that set.

Quiet schedules (``Schedule.checkpoint`` set) run the cores as a quiet chain does: a
height starts only when there is work. Ballots are submitted to honest validators at
chosen times (and gossiped over the same hostile network); the run lasts
``Schedule.until`` simulated seconds and checks, besides safety: every ballot final
within a bound after max(submission, GST); no empty block decided while no ballot was
outstanding unless the checkpoint interval had passed since the previous block
(schedules without Byzantine validators, who may wake the others at will); and a block
at least every checkpoint interval plus one height's bound after GST.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ballotledger.election_kit import ElectionKit
from ledger.assemble import assemble_block
from ledger.block import Block, CommitCertificate, VoteKind
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey
from ledger.elections import Elections
from ledger.errors import LedgerError
from ledger.genesis import ChainParams, ElectionDef, Genesis, ValidatorInfo, ValidatorSet
from ledger.hashing import keccak256
from ledger.rules import apply_block, validators_at
from ledger.state import ChainTip
from ledger.validators import ValidatorChange, ValidatorSchedule
from node.consensus.core import (
    Broadcast,
    ConsensusCore,
    Decide,
    Output,
    Persist,
    ScheduleTimeout,
    Timeout,
    TimeoutParams,
)
from node.consensus.messages import (
    Message,
    Proposal,
    Vote,
    decode_message,
    encode_message,
    signing_slot,
)

CHAIN_ID = "sim-chain"
GENESIS_TIME_MS = 1_700_000_000_000
BEHAVIOURS = (
    "equivocate_proposal",
    "equivocate_vote",
    "silent",
    "invalid_block",
    "future_height",
    "garbage",
    "amnesia",
)
SIM_TIMEOUTS = TimeoutParams(
    propose=1.0,
    propose_delta=0.5,
    prevote=0.5,
    prevote_delta=0.25,
    precommit=0.5,
    precommit_delta=0.25,
    commit=0.05,
    gossip=1.0,
)
DELTA = 0.1  # maximum message delay after GST
ELECTION_ID = "sim-election"
VOTERS = 64  # ballots a quiet schedule may submit


class SimulationFailure(AssertionError):
    pass


# --- the ledger side ----------------------------------------------------------------
_KEYS: dict[int, SigningKey] = {}
_GENESIS: dict[tuple[int, tuple[int, ...] | None, bool, bool], Genesis] = {}
_VOTERS = [SigningKey.from_seed(f"sim-voter-{i}".encode()) for i in range(VOTERS)]
_CREDENTIALS = CredentialSet([k.public_key for k in _VOTERS])


def validator_key(i: int) -> SigningKey:
    if i not in _KEYS:
        _KEYS[i] = SigningKey.from_seed(f"sim-validator-{i}".encode())
    return _KEYS[i]


def make_genesis(n: int, powers: tuple[int, ...] | None = None, contracts: bool = False, *,
                 election: bool = False) -> Genesis:
    """A chain of ``n`` validators, of equal power unless ``powers`` says otherwise
    (``contracts``: with a registry, here :class:`SimRegistry`; ``election``: one
    plaintext election open throughout, for quiet schedules' ballots)."""
    if (n, powers, contracts, election) in _GENESIS:
        return _GENESIS[(n, powers, contracts, election)]
    elections = (
        ElectionDef(
            election_id=ELECTION_ID, question="Quiet?", choices=("yes", "no"),
            credential_root=_CREDENTIALS.root, credential_count=len(_CREDENTIALS),
            opens_at_ms=GENESIS_TIME_MS, closes_at_ms=GENESIS_TIME_MS + 10**9, revoting="first-counts",
        ),
    ) if election else ()
    validators = ValidatorSet(
        tuple(
            ValidatorInfo(f"v{i}", validator_key(i).public_key, 1 if powers is None else powers[i])
            for i in range(n)
        )
    )
    genesis = Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=GENESIS_TIME_MS,
        authority=SigningKey.from_seed(b"sim-authority").public_key,
        validators=validators,
        params=ChainParams(contracts=contracts),
        elections=elections,
    )
    _GENESIS[(n, powers, contracts, election)] = genesis
    return genesis


@dataclass(frozen=True)
class _Executed:
    state_root: bytes


class SimRegistry:
    """The registry as the rules see it, without the EVM: the state after block h is a
    hash of h, and holds the validator changes carried at heights up to h (the real
    registry records a change in the block that carries it: contracts.engine)."""

    def __init__(self, genesis: Genesis, changes: tuple[ValidatorChange, ...]) -> None:
        self.genesis = genesis
        self.changes = changes
        self._heights: dict[bytes, int] = {}

    def _root(self, height: int) -> bytes:
        root = keccak256(b"sim-state" + height.to_bytes(8, "big"))
        self._heights[root] = height
        return root

    def genesis_state_root(self) -> bytes:
        return self._root(0)

    def elections(self, state_root: bytes) -> Elections:
        return Elections.of_genesis(self.genesis)

    def validator_changes(self, state_root: bytes) -> tuple[ValidatorChange, ...]:
        height = self._heights[state_root]
        return tuple(c for c in self.changes if c.height <= height)

    def execute_block(self, state_root: bytes, height: int, time_ms: int, transactions: Any,
                      checkpoint: Any) -> _Executed:
        return _Executed(self._root(height))


def sim_ballot(genesis: Genesis, voter: int) -> bytes:
    """Voter ``voter``'s ballot in the quiet schedules' election."""
    kit = ElectionKit(genesis, [], SigningKey.from_seed(b"sim-authority"), _VOTERS, _CREDENTIALS, ELECTION_ID)
    return kit.ballot(voter, voter % 2).encode()


class DictView:
    """A LedgerView over two dicts: what the chain so far counted and logged."""

    def __init__(self) -> None:
        self.counted: dict[tuple[str, bytes], bytes] = {}
        self.ballots: set[bytes] = set()

    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        return self.counted.get((election_id, credential))

    def has_ballot(self, tracking_code: bytes) -> bool:
        return tracking_code in self.ballots


class SimApp:
    """The consensus Application over real ledger rules, for one node's chain."""

    def __init__(self, genesis: Genesis, proposer: bytes, clock_ms: Any, engine: SimRegistry | None = None) -> None:
        self.genesis = genesis
        self.proposer = proposer
        self.clock_ms = clock_ms
        self.engine = engine
        self.tip = ChainTip.at_genesis(genesis, engine)
        self.view = DictView()
        self.last_cert: CommitCertificate | None = None
        self._valid: dict[tuple[bytes, bytes], bool] = {}
        self._hashes: dict[bytes, bytes] = {}
        self.pending: dict[bytes, bytes] = {}  # this node's mempool: tracking code -> ballot

    def add_ballot(self, raw: bytes) -> bool:
        """Into the mempool unless already there or final; True if it is new here."""
        code = keccak256(raw)
        if code in self.pending or code in self.view.ballots:
            return False
        self.pending[code] = raw
        return True

    def has_work(self, height: int) -> bool:
        return bool(self.pending)

    def build_block(self, height: int, round: int, *, time_shift: int = 0) -> bytes:
        assert height == self.tip.height + 1, (height, self.tip.height)
        block = assemble_block(
            self.genesis,
            self.tip,
            list(self.pending.values()),
            time_ms=self.clock_ms() + time_shift,
            proposer=self.proposer,
            last_commit=self.last_cert,
            engine=self.engine,
        )
        return block.encode()

    def validators_at(self, height: int) -> ValidatorSet:
        return validators_at(self.genesis, self.tip.state_root, self.engine, height)

    def build_invalid_block(self, height: int) -> bytes:
        """A well-formed block the rules refuse: it names a parent that is not the tip."""
        wrong_tip = ChainTip(
            self.tip.chain_id,
            self.tip.height,
            keccak256(b"not the parent" + self.tip.block_hash),
            self.tip.time_ms,
            self.tip.state_root,
            self.tip.log_frontier,
        )
        block = assemble_block(
            self.genesis, wrong_tip, (), time_ms=self.clock_ms(), proposer=self.proposer,
            last_commit=self.last_cert, engine=self.engine,
        )
        return block.encode()

    def validate_block(self, height: int, block: bytes) -> bool:
        key = (self.tip.block_hash, keccak256(block))
        if key not in self._valid:
            try:
                decoded = Block.decode(block)
                if decoded.height != height:
                    raise LedgerError("wrong height")
                apply_block(self.genesis, self.tip, self.view, decoded, engine=self.engine)
                self._valid[key] = True
            except LedgerError:
                self._valid[key] = False
        return self._valid[key]

    def block_hash(self, block: bytes) -> bytes:
        digest = keccak256(block)
        if digest not in self._hashes:
            self._hashes[digest] = Block.decode(block).hash()
        return self._hashes[digest]

    def commit(self, raw: bytes, cert: CommitCertificate) -> None:
        """What the driver does on Decide; raises if the rules or the certificate refuse."""
        block = Block.decode(raw)
        in_force = self.validators_at(block.height)
        effects = apply_block(self.genesis, self.tip, self.view, block, engine=self.engine)
        cert.check(
            in_force,
            chain_id=self.genesis.chain_id,
            height=block.height,
            block_hash=block.hash(),
        )
        for counted in effects.counted:
            self.view.counted[(counted.election.election_id, counted.envelope.credential)] = counted.tracking_code
        for checked in effects.ballots:
            self.view.ballots.add(checked.tracking_code)
            self.pending.pop(checked.tracking_code, None)
        self.tip = effects.tip
        self.last_cert = cert


class AmnesiaCore(ConsensusCore):
    """A Byzantine validator that forgets its lock and valid value at every new round."""

    def _start_round(self, round_: int) -> None:
        self.locked_round, self.locked_hash = -1, None
        self.valid_round, self.valid_value, self.valid_hash = -1, None, None
        super()._start_round(round_)


# --- schedules ----------------------------------------------------------------
@dataclass(frozen=True)
class Partition:
    start: float
    end: float
    group: frozenset[int]  # one side; the rest is the other side


@dataclass(frozen=True)
class Crash:
    node: int
    at: float
    restart_at: float | None  # None: stays down (only while a quorum of honest stays up)


@dataclass(frozen=True)
class Schedule:
    seed: int
    n: int = 4
    byzantine: tuple[tuple[int, str], ...] = ()
    drop_rate: float = 0.0
    dup_rate: float = 0.0
    max_delay: float = 0.1  # before GST
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    gst: float = 0.0
    target_height: int = 3
    powers: tuple[int, ...] | None = None  # voting powers; None: all equal
    # Validator set changes: (carrying height, node removed or None, node added or None);
    # nodes n .. n + extra - 1 start outside the set (followers).
    changes: tuple[tuple[int, int | None, int | None], ...] = ()
    extra: int = 0
    # Quiet chain: the checkpoint interval (None: a block every commit timeout, and the run
    # ends at the target height), ballots submitted as (time, validator), and how long
    # the run lasts.
    checkpoint: float | None = None
    submissions: tuple[tuple[float, int], ...] = ()
    until: float = 0.0

    @property
    def f(self) -> int:
        """How many validators may be faulty (Byzantine or down for good) at once."""
        return (self.n - 1) // 3

    def power(self, nodes: Iterable[int]) -> int:
        return sum(1 if self.powers is None else self.powers[i] for i in nodes)

    def may_fail(self, faulty: Iterable[int]) -> bool:
        """Whether ``faulty`` may all be faulty: at most f of them, under 1/3 of the power."""
        nodes = set(faulty)
        total = self.power(range(self.n))
        return len(nodes) <= self.f and 3 * self.power(nodes) < total

    def effective_gst(self) -> float:
        ends = [self.gst]
        ends += [p.end for p in self.partitions]
        ends += [c.restart_at for c in self.crashes if c.restart_at is not None]
        ends += [c.at for c in self.crashes]
        return max(ends)


def faulty_within_bounds(shape: Schedule, nodes: list[int]) -> list[int]:
    """The longest prefix of ``nodes`` that may all be faulty in ``shape``'s validator set."""
    while not shape.may_fail(nodes):
        nodes = nodes[:-1]
    return nodes


def random_schedule(rng: random.Random, seed: int) -> Schedule:
    """A schedule drawn from ``rng`` (the seeded-loop counterpart of the hypothesis one).
    About a third have validators of unequal power (1 to 4)."""
    n = rng.randint(4, 7)
    f = (n - 1) // 3
    powers = tuple(rng.randint(1, 4) for _ in range(n)) if rng.random() < 0.35 else None
    shape = Schedule(seed=seed, n=n, powers=powers)
    byz_nodes = faulty_within_bounds(shape, rng.sample(range(n), rng.randint(0, f)))
    byzantine = tuple((i, rng.choice(BEHAVIOURS)) for i in sorted(byz_nodes))
    honest = [i for i in range(n) if i not in byz_nodes]
    partitions = []
    for _ in range(rng.randint(0, 2)):
        start = rng.uniform(0, 8)
        group = frozenset(rng.sample(range(n), rng.randint(1, n - 1)))
        partitions.append(Partition(start, start + rng.uniform(0.5, 8), group))
    crashes = []
    faulty = list(byz_nodes)  # a validator down for good counts as faulty
    for node in rng.sample(honest, rng.randint(0, min(2, len(honest)))):
        at = rng.uniform(0, 10)
        if shape.may_fail([*faulty, node]) and rng.random() < 0.3:
            faulty.append(node)
            crashes.append(Crash(node, at, None))
        else:
            crashes.append(Crash(node, at, at + rng.uniform(0.1, 6)))
    return Schedule(
        seed=seed,
        n=n,
        powers=powers,
        byzantine=byzantine,
        drop_rate=rng.choice([0.0, 0.05, 0.2, 0.4]),
        dup_rate=rng.choice([0.0, 0.1]),
        max_delay=rng.choice([0.05, 0.5, 2.0]),
        partitions=tuple(partitions),
        crashes=tuple(crashes),
        gst=rng.uniform(0, 10),
        target_height=rng.randint(2, 4),
    )


def quiet_schedule(rng: random.Random, seed: int) -> Schedule:
    """A quiet-chain schedule: faults as ``random_schedule`` draws them, a few ballots
    with idle gaps between them, each submitted to an honest validator that never crashes
    (a crash loses its mempool, as a node's does). The checkpoint interval is short (its
    cadence is checked) or longer than the run (ballots must be final without its help)."""
    base = random_schedule(rng, seed)
    checkpoint = rng.choice([5.0, 1000.0])
    crashed = {c.node for c in base.crashes}
    byzantine = {i for i, _ in base.byzantine}
    holders = [i for i in range(base.n) if i not in crashed and i not in byzantine]
    at = 0.0
    submissions = []
    for _ in range(rng.randint(1, 6)):
        at += rng.choice([rng.uniform(0.0, 0.5), rng.uniform(0.5, 15.0)])
        submissions.append((at, rng.choice(holders)))
    return replace(base, checkpoint=checkpoint, submissions=tuple(submissions),
                   until=quiet_run_length(checkpoint, at, base.effective_gst()))


def quiet_run_length(checkpoint: float, last_submission: float, gst: float) -> float:
    """Long enough for every ballot's finality bound to pass with a long checkpoint
    interval; with a short one (its cadence is what is checked) eight intervals."""
    return max(last_submission, gst) + (250.0 if checkpoint > 100 else 8 * checkpoint)


# --- the simulation ----------------------------------------------------------------
@dataclass
class SimNode:
    index: int
    behaviour: str | None  # None: honest
    app: SimApp
    core: ConsensusCore | None
    up: bool = True
    epoch: int = 0
    persisted: list[Message] = field(default_factory=list)
    store: list[tuple[bytes, CommitCertificate]] = field(default_factory=list)
    sync_until: float = -1.0
    decided_at: dict[int, float] = field(default_factory=dict)

    @property
    def honest(self) -> bool:
        return self.behaviour is None

    @property
    def height(self) -> int:
        return len(self.store)


@dataclass(frozen=True)
class SyncRequest:
    from_height: int


@dataclass(frozen=True)
class SyncReply:
    blocks: tuple[tuple[bytes, CommitCertificate], ...]


@dataclass(frozen=True)
class BallotGossip:
    raw: bytes


@dataclass
class Result:
    schedule: Schedule
    time: float
    events: int
    heights: dict[int, int]
    decided: dict[int, bytes]
    stats: dict[str, int]
    reached_at: float | None


class Simulation:
    def __init__(self, schedule: Schedule, *, timeouts: TimeoutParams = SIM_TIMEOUTS) -> None:
        self.s = schedule
        self.rng = random.Random(schedule.seed)
        self.quiet = schedule.checkpoint is not None
        self.timeouts = replace(timeouts, checkpoint=schedule.checkpoint) if self.quiet else timeouts
        self.genesis = make_genesis(schedule.n, schedule.powers, contracts=bool(schedule.changes), election=self.quiet)
        self.ballots = [sim_ballot(self.genesis, k) for k in range(len(schedule.submissions))]
        self.final_at: dict[bytes, float] = {}  # tracking code -> first honest decision
        self.first_decided: dict[int, tuple[float, bool]] = {}  # height -> (time, empty)
        self._gst_bound = 0.0  # progress_bound() as it stood at GST
        self.validators = self.genesis.validators
        self.total = schedule.n + schedule.extra
        changes = tuple(
            ValidatorChange(h, validator_key(r).public_key if r is not None else b"",
                            ValidatorInfo(f"v{a}", validator_key(a).public_key, 1) if a is not None else None)
            for h, r, a in schedule.changes
        )
        self.engine = SimRegistry(self.genesis, changes) if changes else None
        self.schedule = ValidatorSchedule.build(self.validators, changes)
        self.now = 0.0
        self.gst = schedule.effective_gst()
        self._queue: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self.events = 0
        self.stats: dict[str, int] = {}
        self.decided: dict[int, bytes] = {}
        self.signed: dict[tuple[int, int, int, int], bytes] = {}
        # What was sent, properly signed, by anyone (for the rule checks above).
        self.prevoters: dict[tuple[int, int, bytes], set[int]] = {}  # (h, r, id) -> senders
        self.proposed: dict[tuple[int, int], set[tuple[bytes, int]]] = {}  # (h, r) -> (id, vr)
        self.locks: dict[tuple[int, int], tuple[int, bytes]] = {}  # (node, h) -> (round, id)
        self._block_ids: dict[bytes, bytes] = {}
        self._decode_cache: dict[bytes, Message | None] = {}
        byz = dict(schedule.byzantine)
        self.nodes = [
            SimNode(i, byz.get(i), self._new_app(i), None) for i in range(self.total)
        ]
        self.down_forever = {c.node for c in schedule.crashes if c.restart_at is None}
        self.target = schedule.target_height

    # --- plumbing ----------------------------------------------------------------
    def _count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    def _push(self, at: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, payload))

    def _clock_ms(self) -> int:
        return GENESIS_TIME_MS + int(self.now * 1000)

    def _new_app(self, i: int) -> SimApp:
        return SimApp(self.genesis, validator_key(i).public_key, self._clock_ms, self.engine)

    def _new_core(self, node: SimNode) -> ConsensusCore:
        height = node.height + 1
        cls = AmnesiaCore if node.behaviour == "amnesia" else ConsensusCore
        if self.engine is not None:  # the set in force at each height, from the node's own chain
            return cls(
                chain_id=CHAIN_ID, validators=self.validators, index=None, key=validator_key(node.index),
                height=height, app=node.app, timeouts=self.timeouts,
                signed_log=[m for m in node.persisted if m.height == height],
                validators_at=lambda h: self.nodes[node.index].app.validators_at(h),
            )
        return cls(
            chain_id=CHAIN_ID,
            validators=self.validators,
            index=node.index,
            key=validator_key(node.index),
            height=height,
            app=node.app,
            timeouts=self.timeouts,
            signed_log=[m for m in node.persisted if m.height == height],
        )

    def _fail(self, what: str) -> None:
        raise SimulationFailure(f"{what} (t={self.now:.3f}, schedule={self.s!r})")

    # --- network ----------------------------------------------------------------
    def _partitioned(self, a: int, b: int) -> bool:
        return any(p.start <= self.now < p.end and (a in p.group) != (b in p.group) for p in self.s.partitions)

    def _send(self, src: int, dst: int, payload: Any) -> None:
        if self._partitioned(src, dst):
            self._count("net_partitioned")
            return
        before_gst = self.now < self.gst
        if before_gst and self.rng.random() < self.s.drop_rate:
            self._count("net_dropped")
            return
        copies = 2 if self.rng.random() < self.s.dup_rate else 1
        for _ in range(copies):
            delay = self.rng.uniform(0.0, self.s.max_delay) if before_gst else self.rng.uniform(0.001, DELTA)
            self._push(self.now + delay, "deliver", (src, dst, payload))

    def _broadcast(self, src: int, data: bytes, targets: list[int] | None = None) -> None:
        for dst in range(self.total) if targets is None else targets:
            if dst != src:
                self._send(src, dst, data)

    # --- outputs ----------------------------------------------------------------
    def _perform(self, node: SimNode, outs: list[Output]) -> None:
        for o in outs:
            if isinstance(o, Persist):
                node.persisted.append(o.message)
                self._record_signed(node, o.message)
            elif isinstance(o, Broadcast):
                self._record_signed(node, o.message)
                if node.honest:
                    self._send_message(node.index, o.message)
                else:
                    self._byzantine_broadcast(node, o.message)
            elif isinstance(o, ScheduleTimeout):
                self._push(self.now + o.delay_s, "timer", (node.index, node.epoch, o.timeout))
            elif isinstance(o, Decide):
                self._on_decide(node, o)

    def _record_signed(self, node: SimNode, m: Message) -> None:
        if not node.honest:
            return
        if self.schedule.at(m.height).validators[m.sender].public_key != validator_key(node.index).public_key:
            return  # a proposal persisted for a lock was signed by its proposer
        key = (node.index, *signing_slot(m))
        data = encode_message(m)
        previous = self.signed.setdefault(key, data)
        if previous != data:
            self._fail(f"honest validator {node.index} signed two messages for {key[1:]}")
        if previous is data and isinstance(m, Vote):  # newly signed: check what justifies it
            self._note_sent(m)
            self._check_vote(node.index, m)

    # --- the rules each honest vote must follow, judged from outside the core ---------------
    def _send_message(self, src: int, m: Message, targets: list[int] | None = None) -> None:
        self._note_sent(m)
        self._broadcast(src, encode_message(m), targets)

    def _note_sent(self, m: Message) -> None:
        if isinstance(m, Proposal):
            block_id = self._block_ids.get(m.block)
            if block_id is None:
                block_id = self._block_ids[m.block] = Block.decode(m.block).hash()
            self.proposed.setdefault((m.height, m.round), set()).add((block_id, m.valid_round))
        elif m.kind == VoteKind.PREVOTE:
            self.prevoters.setdefault((m.height, m.round, m.block_hash), set()).add(m.validator_index)

    def _polka(self, height: int, round_: int, block_id: bytes) -> bool:
        """2f+1 of the power sent prevotes for ``block_id`` in (height, round)."""
        senders = self.prevoters.get((height, round_, block_id), set())
        validators = self.schedule.at(height)
        return validators.has_quorum(sum(validators.validators[i].power for i in senders))

    def _check_vote(self, i: int, v: Vote) -> None:
        h, r, x = v.height, v.round, v.block_hash
        if not x:
            return  # nil is always allowed (L26, L32, L45, L59, L63)
        if v.kind == VoteKind.PRECOMMIT:
            if not self._polka(h, r, x):
                self._fail(f"L36: honest validator {i} precommitted {x.hex()[:8]} at {(h, r)} without a polka")
            self.locks[(i, h)] = (r, x)  # L38-39: the lock moves with every non-nil precommit
            return
        proposals = [vr for block_id, vr in self.proposed.get((h, r), ()) if block_id == x]
        if not proposals:
            self._fail(f"L22: honest validator {i} prevoted {x.hex()[:8]} at {(h, r)}, never proposed there")
        locked_round, locked_id = self.locks.get((i, h), (-1, b""))
        if locked_round < 0 or locked_id == x:
            return  # L23/L29: not locked, or locked on this value
        if not any(locked_round <= vr and self._polka(h, vr, x) for vr in proposals):
            line = "L23" if proposals == [-1] else "L29"
            self._fail(
                f"{line}: honest validator {i} locked on {locked_id.hex()[:8]} at round {locked_round} "
                f"prevoted {x.hex()[:8]} at {(h, r)} (valid rounds proposed: {sorted(proposals)})"
            )

    def _on_decide(self, node: SimNode, d: Decide) -> None:
        if d.height != node.height + 1:
            self._fail(f"node {node.index} decided height {d.height} on a chain at {node.height}")
        try:
            node.app.commit(d.block, d.certificate)
        except LedgerError as exc:
            if node.honest:
                self._fail(f"node {node.index} decided an invalid block at {d.height}: {exc}")
            raise
        node.store.append((d.block, d.certificate))
        node.decided_at[d.height] = self.now
        if node.honest:
            first = self.decided.setdefault(d.height, d.block)
            if first != d.block:
                self._fail(f"agreement violated at height {d.height} (node {node.index})")
            if d.height not in self.first_decided:
                ballots = Block.decode(d.block).ballots
                self.first_decided[d.height] = (self.now, not ballots)
                for raw in ballots:
                    self.final_at.setdefault(keccak256(raw), self.now)

    # --- Byzantine behaviours ----------------------------------------------------------------
    def _byzantine_broadcast(self, node: SimNode, m: Message) -> None:
        key = validator_key(node.index)
        b = node.behaviour
        others = [i for i in range(self.total) if i != node.index]
        half = len(others) // 2
        if b == "silent":
            return
        if b == "amnesia" and isinstance(m, Vote) and m.kind == VoteKind.PRECOMMIT:
            # Precommit to one peer only: helps one validator decide while the others
            # move on, which is exactly what locks must survive.
            self._send_message(node.index, m, [self.rng.choice(others)])
            return
        if b == "equivocate_proposal" and isinstance(m, Proposal):
            alt_block = node.app.build_block(m.height, m.round, time_shift=1 + m.round)
            alt = Proposal.sign(
                key, chain_id=m.chain_id, height=m.height, round_=m.round, block=alt_block,
                valid_round=-1, proposer_index=m.proposer_index,
            )
            self._send_message(node.index, m, others[:half])
            self._send_message(node.index, alt, others[half:])
            return
        if b == "equivocate_vote" and isinstance(m, Vote):
            other_hash = b"" if m.block_hash else keccak256(self.rng.randbytes(8))
            alt_vote = Vote.sign(
                key, chain_id=m.chain_id, kind=m.kind, height=m.height, round_=m.round,
                block_hash=other_hash, validator_index=m.validator_index,
            )
            split = self.rng.randint(0, len(others))
            self._send_message(node.index, m, others[:split])
            self._send_message(node.index, alt_vote, others[split:])
            return
        if b == "invalid_block" and isinstance(m, Proposal):
            bad = Proposal.sign(
                key, chain_id=m.chain_id, height=m.height, round_=m.round,
                block=node.app.build_invalid_block(m.height), valid_round=-1,
                proposer_index=m.proposer_index,
            )
            self._send_message(node.index, bad)
            return
        self._send_message(node.index, m)
        if b == "future_height":
            for dh in (1, 1, 2, 5):
                v = Vote.sign(
                    key, chain_id=m.chain_id, kind=VoteKind(self.rng.randint(1, 2)),
                    height=m.height + dh, round_=self.rng.randint(0, 6),
                    block_hash=keccak256(self.rng.randbytes(8)), validator_index=node.index,
                )
                self._send_message(node.index, v)
        elif b == "garbage":
            self._broadcast(node.index, self.rng.randbytes(self.rng.randint(0, 80)))
            data = bytearray(encode_message(m))
            data[-1 - self.rng.randint(0, 63)] ^= 1 << self.rng.randint(0, 7)
            self._broadcast(node.index, bytes(data))  # a bad signature (or undecodable)
            forged = Vote(
                m.chain_id, VoteKind.PRECOMMIT, m.height, m.round,
                keccak256(self.rng.randbytes(8)), self.rng.randrange(self.s.n),
                self.rng.randbytes(64),
            )
            self._broadcast(node.index, encode_message(forged))
            wrong_chain = Vote.sign(
                key, chain_id="other-chain", kind=VoteKind.PREVOTE, height=m.height,
                round_=m.round, block_hash=b"", validator_index=node.index,
            )
            self._broadcast(node.index, encode_message(wrong_chain))  # refused: not noted

    # --- events ----------------------------------------------------------------
    def _decode(self, data: bytes) -> Message | None:
        if data not in self._decode_cache:
            try:
                self._decode_cache[data] = decode_message(data)
            except LedgerError:
                self._decode_cache[data] = None
        return self._decode_cache[data]

    def _deliver(self, src: int, dst: int, payload: Any) -> None:
        node = self.nodes[dst]
        if not node.up or node.core is None:
            self._count("net_to_down_node")
            return
        core = node.core
        if isinstance(payload, SyncRequest):
            blocks = tuple(node.store[payload.from_height - 1 : payload.from_height + 9])
            if blocks:
                self._send(dst, src, SyncReply(blocks))
            return
        if isinstance(payload, SyncReply):
            for block, cert in payload.blocks:
                if node.core is not None and cert.height == node.core.height:
                    self._perform(node, node.core.on_commit(block, cert))
            return
        if isinstance(payload, BallotGossip):
            if node.app.add_ballot(payload.raw):
                self._perform(node, core.on_work())
            return
        m = self._decode(payload)
        if m is None:
            self._count("undecodable")
            return
        if m.height > core.height and self.now >= node.sync_until:
            # Block sync (the driver's job): a peer is ahead of us; ask it for blocks.
            node.sync_until = self.now + 1.0
            self._send(dst, src, SyncRequest(core.height))
        self._perform(node, core.on_message(m))

    def _submit(self, k: int, i: int) -> None:
        """Ballot ``k`` reaches validator ``i`` (as through its RPC), which gossips it."""
        node = self.nodes[i]
        if not node.up or node.core is None:
            self._fail(f"ballot {k} submitted to validator {i} while it is down")
        raw = self.ballots[k]
        if node.app.add_ballot(raw):
            for dst in range(self.s.n):
                if dst != i:
                    self._send(i, dst, BallotGossip(raw))
            self._perform(node, node.core.on_work())

    def _crash(self, c: Crash) -> None:
        node = self.nodes[c.node]
        node.up = False
        node.core = None
        node.epoch += 1
        if c.restart_at is not None:
            self._push(c.restart_at, "restart", c.node)

    def _restart(self, i: int) -> None:
        node = self.nodes[i]
        node.up = True
        node.app = self._new_app(i)
        for block, cert in node.store:  # the durable chain
            node.app.commit(block, cert)
        node.core = self._new_core(node)
        self._count("restarts")
        self._perform(node, node.core.start())

    def _done(self) -> bool:
        target = self.target
        return all(
            n.height >= target for n in self.nodes if n.honest and n.index not in self.down_forever
        )

    def progress_bound(self) -> float:
        """Simulated seconds after GST by which the target height must be reached.

        After GST a height needs at most f+2 rounds (f faulty proposers, one round to
        unstick locks, one with a correct proposer), each at most the three timeouts plus a
        few message delays; a validator that missed heights needs a gossip period and a
        sync round trip first. Rounds already run up before GST make timeouts longer: the
        budget allows for rounds up to twice the highest round reached at GST plus f+2.
        """
        t = self.timeouts
        top = max((n.core.round for n in self.nodes if n.core is not None), default=0)
        low = min(n.height for n in self.nodes if n.honest and n.index not in self.down_forever)
        per_round = t.propose + t.prevote + t.precommit + 6 * DELTA
        per_delta = t.propose_delta + t.prevote_delta + t.precommit_delta
        rounds = self.s.f + 2
        first = sum(per_round + per_delta * r for r in range(2 * top + rounds + 1))
        later = sum(per_round + per_delta * r for r in range(rounds))
        catch_up = 2 * t.gossip + 4 * DELTA + t.commit
        heights = max(self.target - low, 1)
        return catch_up + first + (heights - 1) * (later + t.commit + 2 * DELTA)

    def height_bound(self) -> float:
        """Simulated seconds a height may take after GST once some honest validator has
        work: f+2 rounds (from round 0: a quiet height starts there), a gossip period for
        a vote that woke no one, and a proposal timeout for the first waker's wait."""
        t = self.timeouts
        per_round = t.propose + t.prevote + t.precommit + 6 * DELTA
        per_delta = t.propose_delta + t.prevote_delta + t.precommit_delta
        rounds = sum(per_round + per_delta * r for r in range(self.s.f + 2))
        return t.commit + t.gossip + t.propose + rounds + 4 * DELTA

    def finality_bound(self) -> float:
        """Simulated seconds after max(submission, GST) within which a ballot is final.

        If gossip lost the ballot before GST, only its holder has it; each height the
        holder starts rounds, and a block without the ballot goes by, until the holder is
        the proposer: at most n heights, each within ``height_bound`` (rounds reached
        before GST lengthen the first one, as in ``progress_bound``)."""
        return self._gst_bound + (self.s.n + 1) * self.height_bound()

    def run(self) -> Result:
        for c in self.s.crashes:
            self._push(c.at, "crash", c)
        for k, (at, i) in enumerate(self.s.submissions):
            self._push(at, "submit", (k, i))
        if self.quiet:
            self._push(self.s.until, "end", None)
        self._push(self.gst, "gst", None)
        for node in self.nodes:
            node.core = self._new_core(node)
            self._perform(node, node.core.start())
        deadline: float | None = None
        reached_at: float | None = None
        while self._queue:
            at, _, kind, payload = heapq.heappop(self._queue)
            if deadline is not None and at > deadline:
                break
            self.now = at
            self.events += 1
            if kind == "deliver":
                self._deliver(*payload)
            elif kind == "timer":
                i, epoch, timeout = payload
                node = self.nodes[i]
                if node.up and node.epoch == epoch and node.core is not None:
                    assert isinstance(timeout, Timeout)
                    self._perform(node, node.core.on_timeout(timeout))
            elif kind == "crash":
                self._crash(payload)
            elif kind == "restart":
                self._restart(payload)
            elif kind == "submit":
                self._submit(*payload)
            elif kind == "end":
                break
            elif kind == "gst" and self.quiet:
                self._gst_bound = self.progress_bound()
            elif kind == "gst":
                # Progress must be shown after GST too: two heights past the best one.
                best = max(n.height for n in self.nodes if n.honest)
                self.target = max(self.target, best + 2)
                deadline = self.gst + self.progress_bound()
            if not self.quiet and self.now >= self.gst and self._done():
                reached_at = self.now
                break
            if self.events > 2_000_000:  # pragma: no cover - a runaway would be a bug
                self._fail("runaway simulation")
        if self.quiet:
            self._check_quiet()
        elif reached_at is None and not self._done():
            heights = {n.index: n.height for n in self.nodes}
            self._fail(f"no progress: heights {heights} at the deadline {deadline}")
        for node in self.nodes:
            if node.core is not None:
                for k, v in node.core.stats.items():
                    self._count("core_" + k, v)
        return Result(
            schedule=self.s,
            time=self.now,
            events=self.events,
            heights={n.index: n.height for n in self.nodes},
            decided=dict(self.decided),
            stats=dict(self.stats),
            reached_at=reached_at,
        )


    def _check_quiet(self) -> None:
        """The quiet-chain properties (see the module doc), at the end of a quiet run."""
        bound = self.finality_bound()
        for k, (at, i) in enumerate(self.s.submissions):
            final = self.final_at.get(keccak256(self.ballots[k]))
            due = max(at, self.gst) + bound
            if (final is None and due <= self.now) or (final is not None and final > due):
                self._fail(f"ballot {k} submitted to {i} at {at:.2f} final at {final}, due by {due:.2f}")
        checkpoint = self.s.checkpoint
        assert checkpoint is not None
        finals = [(at, self.final_at.get(keccak256(raw), float("inf")))
                  for (at, _), raw in zip(self.s.submissions, self.ballots, strict=True)]
        previous = 0.0
        for height in sorted(self.first_decided):
            decided, empty = self.first_decided[height]
            outstanding = any(at <= decided and final > previous for at, final in finals)
            if not self.s.byzantine and empty and not outstanding and (
                decided - previous < checkpoint - self.timeouts.commit
            ):
                self._fail(f"empty block {height} decided {decided - previous:.2f}s after the previous with "
                           f"nothing pending (checkpoint interval {checkpoint})")
            if previous >= self.gst and decided - previous > checkpoint + self.height_bound():
                self._fail(f"no block for {decided - previous:.2f}s before height {height} after GST")
            previous = decided
        if self.now - max(previous, self.gst) > checkpoint + self.height_bound():
            self._fail(f"the chain went quiet for good: last decision at {previous:.2f}, run ended {self.now:.2f}")


def simulate(schedule: Schedule, **kwargs: Any) -> Result:
    return Simulation(schedule, **kwargs).run()
