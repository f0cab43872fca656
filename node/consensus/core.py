"""Tendermint BFT as a sans-IO state machine.

This is Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT consensus"
(2018); comments cite its line numbers as ``L22`` and so on. The core does no I/O, reads
no clock, draws no randomness and starts no thread: the driver feeds it inputs
(:meth:`ConsensusCore.start`, :meth:`~ConsensusCore.on_proposal`,
:meth:`~ConsensusCore.on_vote`, :meth:`~ConsensusCore.on_timeout`,
:meth:`~ConsensusCore.on_commit`) and performs the outputs each returns, in order.

How a driver must perform the outputs of one call, in list order:

* :class:`Persist` -- durably write the message (fsync) before performing any later output
  of the same list. Everything this validator signs is persisted before it is broadcast.
  The proposal a validator locks on (precommits for) is persisted too, even though another
  validator signed it, so that the lock's block survives a restart.
* :class:`Broadcast` -- send to every peer (best effort; the core re-gossips on stalls).
* :class:`ScheduleTimeout` -- call ``on_timeout(output.timeout)`` after ``delay_s``. Timers
  are never cancelled; a stale one is ignored by the core.
* :class:`Decide` -- durably commit the block with its certificate *before* delivering the
  next input: the core has already moved to ``height + 1`` and the next input may ask the
  :class:`Application` about the block after it.
* :class:`RoundChange` -- nothing to do: it tells the driver's logs and metrics why the core
  left a round without deciding, and what that round saw.

Restart: rebuild the core at ``store height + 1`` and pass every message persisted at that
height (passing more is fine: other heights are ignored) as ``signed_log``. The core then
re-broadcasts what it signed, resumes at the highest round it signed in, restores its lock
from its own highest non-nil precommit, and never signs a different message for a
(height, round, kind) it already signed.

Two things beyond Algorithm 1, both from the paper's system model rather than its rules:

* Gossip (section II: a message received by a correct process reaches every correct one
  within Delta after GST). Networks drop messages, so on a ``GOSSIP`` timer that finds no
  progress since the last one the core re-broadcasts its own messages of the current and
  previous round and relays the proposal and votes it holds for them.
* Catch-up. A validator more than one height behind cannot decide through the votes of a
  height its peers left; the driver's block sync passes it certified blocks through
  :meth:`~ConsensusCore.on_commit`.

Between deciding and starting the next height the core sits in ``Step.NEW_HEIGHT`` until the
``NEW_HEIGHT`` timer (``timeout_commit`` in CometBFT) fires; messages for the new height
are stored meanwhile, and the Application is not asked about the new height before then.

Quiet chains (``TimeoutParams.checkpoint`` set; CometBFT's ``create_empty_blocks = false``
with ``create_empty_blocks_interval``). Round 0 of a height is StartRound(0) (L10/L54)
deferred, never skipped: the core waits in ``Step.WAIT`` (no round started, so no timeout
of a round runs and nothing is signed) until the first of

* :meth:`~ConsensusCore.on_work` from the driver, or ``Application.has_work`` when the
  height begins: something is pending (a ballot, a transaction, a time event);
* a validly signed proposal or vote of this height from another validator: someone
  started, so the height is live for everyone (a validator lacking the ballot that woke
  the others still takes part, and the round progresses by timeouts as usual);
* the ``CHECKPOINT`` timer, ``checkpoint`` seconds after the decision: an empty block
  then shows observers the chain is alive.

Waiting only delays when a correct process calls StartRound(0); Algorithm 1's safety holds
for any such delay, and liveness after GST holds once every correct process has started,
which the second condition brings about within one message delay of the first starting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol

from ledger.block import CommitCertificate, VoteKind
from ledger.crypto import SigningKey
from ledger.errors import BadSignature, LedgerError
from ledger.genesis import ValidatorSet
from node.consensus.messages import PROPOSAL_SLOT, Message, Proposal, Vote, signing_slot
from node.consensus.votes import HeightVotes


class Step(IntEnum):
    NEW_HEIGHT = 0  # decided the previous height, waiting for the NEW_HEIGHT timer
    WAIT = 1  # quiet chain: round 0 not started until there is work (see the module doc)
    PROPOSE = 2
    PREVOTE = 3
    PRECOMMIT = 4


class Rule(Enum):
    """The upon-rules that fire only "for the first time" in a round."""

    PREVOTE_TIMEOUT = "prevote_timeout"  # L34-35: 2f+1 prevotes of any value
    POLKA_VALUE = "polka_value"  # L36-43: the proposal and 2f+1 prevotes for it
    PRECOMMIT_TIMEOUT = "precommit_timeout"  # L47-48: 2f+1 precommits of any value


class TimerKind(IntEnum):
    PROPOSE = 1  # L21 / L57
    PREVOTE = 2  # L35 / L61
    PRECOMMIT = 3  # L48 / L65
    NEW_HEIGHT = 4  # start round 0 of the next height
    GOSSIP = 5  # re-gossip when stalled
    CHECKPOINT = 6  # quiet chain: start round 0 with nothing pending, for an empty block


@dataclass(frozen=True)
class Timeout:
    height: int
    round: int
    step: TimerKind


@dataclass(frozen=True)
class TimeoutParams:
    """Timeouts in seconds; the three of Algorithm 1 grow linearly with the round."""

    propose: float = 3.0
    propose_delta: float = 0.5
    prevote: float = 1.0
    prevote_delta: float = 0.5
    precommit: float = 1.0
    precommit_delta: float = 0.5
    commit: float = 0.0
    gossip: float = 2.0
    # Quiet chain: None starts round 0 as soon as the NEW_HEIGHT timer fires (a block every
    # ``commit`` seconds, empty or not); a number waits for work, at most this long after
    # the decision.
    checkpoint: float | None = None

    def delay(self, step: TimerKind, round_: int) -> float:
        if step == TimerKind.PROPOSE:
            return self.propose + round_ * self.propose_delta
        if step == TimerKind.PREVOTE:
            return self.prevote + round_ * self.prevote_delta
        if step == TimerKind.PRECOMMIT:
            return self.precommit + round_ * self.precommit_delta
        if step == TimerKind.NEW_HEIGHT:
            return self.commit
        if step == TimerKind.CHECKPOINT:
            return max((self.checkpoint or 0.0) - self.commit, 0.0)  # counted from the decision
        return self.gossip


# --- outputs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Persist:
    message: Message


@dataclass(frozen=True)
class Broadcast:
    message: Message


@dataclass(frozen=True)
class ScheduleTimeout:
    height: int
    round: int
    step: TimerKind
    delay_s: float

    @property
    def timeout(self) -> Timeout:
        return Timeout(self.height, self.round, self.step)


@dataclass(frozen=True)
class Decide:
    height: int
    round: int
    block: bytes
    certificate: CommitCertificate


@dataclass(frozen=True)
class RoundChange:
    """The core moved to a later round of the same height, without deciding."""

    height: int
    round: int  # the round entered
    reason: str  # "timeout_precommit" (L65) or "round_skip" (L55: f+1 senders in a later round)
    # What the round left saw, in order: "timeout_propose" (L57), "invalid_proposal",
    # "polka_nil" (L44), "timeout_prevote" (L61).
    events: tuple[str, ...]


Output = Persist | Broadcast | ScheduleTimeout | Decide | RoundChange
SignedLog = Sequence[Message]


class Application(Protocol):
    """The ledger as seen by consensus. Must be deterministic and side-effect free."""

    def build_block(self, height: int, round: int) -> bytes:
        """An encoded block to propose at ``height`` (on the committed chain at height-1)."""
        ...

    def validate_block(self, height: int, block: bytes) -> bool:
        """Whether ``block`` is a valid block at ``height`` under the ledger rules."""
        ...

    def block_hash(self, block: bytes) -> bytes:
        """id(v); only asked about blocks validate_block accepted."""
        ...

    def has_work(self, height: int) -> bool:
        """Whether a block at ``height`` has something to carry (quiet chains only)."""
        ...


MAX_EVIDENCE = 64


class _Slot:
    """A proposal received for one round, with its lazily computed valid(v) and id(v)."""

    __slots__ = ("block_hash", "checked", "message", "valid")

    def __init__(self, message: Proposal) -> None:
        self.message = message
        self.checked = False
        self.valid = False
        self.block_hash = b""


class ConsensusCore:
    """One validator's (or a non-voting follower's) Tendermint instance, height by height."""

    def __init__(
        self,
        *,
        chain_id: str,
        validators: ValidatorSet,
        index: int | None,
        key: SigningKey | None,
        height: int,
        app: Application,
        timeouts: TimeoutParams | None = None,
        signed_log: SignedLog = (),
        max_buffer_rounds: int = 4,
        max_future_rounds: int = 4,
        validators_at: Callable[[int], ValidatorSet] | None = None,
    ) -> None:
        """``validators_at(h)``: the set in force at height ``h`` (``ledger.validators``),
        asked for the current height and the next; then ``validators`` is unused, ``key``
        is the node's own, and its index at each height follows from the set (None
        while its key is not in it: it follows without voting). Without it the set and
        ``index`` are fixed."""
        if validators_at is None and (index is None) != (key is None):
            raise ValueError("a validator needs both an index and a key; a follower neither")
        if validators_at is None and index is not None and key is not None:
            if not 0 <= index < len(validators):
                raise ValueError(f"validator index {index} is not in the set")
            if validators.validators[index].public_key != key.public_key:
                raise ValueError("the key does not belong to the validator at this index")
        if height < 1:
            raise ValueError("consensus heights start at 1")
        self.chain_id = chain_id
        self.validators = validators
        self.index = index
        self._key = key
        self._validators_at = validators_at
        self.app = app
        self.timeouts = timeouts or TimeoutParams()
        self.max_buffer_rounds = max_buffer_rounds
        self.max_future_rounds = max_future_rounds
        self._signed_log = list(signed_log)
        self.stats: dict[str, int] = {}
        self.evidence: list[tuple[Message, Message]] = []
        self._out: list[Output] = []
        self._buffer: dict[tuple[int, int, int], Message] = {}  # height+1: (sender, round, kind)
        self._started = False
        self._reset_height(height)

    # --- state of one height -------------------------------------------------------------
    def _reset_height(self, height: int) -> None:
        # L53: a new height carries nothing over: no lock, no valid value, no messages.
        self.height = height
        if self._validators_at is not None:  # the set in force here, and our place in it
            self.validators = self._validators_at(height)
            self.index = self.validators.index_of(self._key.public_key) if self._key is not None else None
        self.round = 0
        self.step = Step.NEW_HEIGHT
        self.locked_round = -1
        self.locked_hash: bytes | None = None
        self.valid_round = -1
        self.valid_value: bytes | None = None
        self.valid_hash: bytes | None = None
        self._proposals: dict[int, _Slot] = {}
        self._extra: dict[int, _Slot] = {}  # a second (equivocating) proposal's block, for L49
        self.votes = HeightVotes(self.validators, max_future_rounds=self.max_future_rounds)
        self.fired: set[tuple[Rule, int]] = set()  # (rule, round): "for the first time"
        self._signed: dict[tuple[int, int], Message] = {}
        self._max_signed_round = -1
        self._persisted: set[bytes] = set()
        self._progress = 0
        self._gossiped_at = -1
        self._round_events: list[str] = []  # for RoundChange
        self._heard = False  # a message of this height from another validator was stored

    # --- public inputs -------------------------------------------------------------------
    def start(self) -> list[Output]:
        """First input after construction: restore from the signed log, start the round."""
        if self._started:
            raise RuntimeError("start() called twice")
        self._started = True
        self._out = []
        self._restore()
        self._schedule(TimerKind.GOSSIP, self.round)
        self._run_rules()
        return self._take()

    def on_proposal(self, proposal: Proposal) -> list[Output]:
        return self._on_message(proposal)

    def on_vote(self, vote: Vote) -> list[Output]:
        return self._on_message(vote)

    def on_message(self, message: Message) -> list[Output]:
        return self._on_message(message)

    def on_work(self) -> list[Output]:
        """Something is pending (the driver's mempool or pool took it, or a time event is
        due): start round 0 if the core is waiting for work; otherwise nothing to do."""
        self._out = []
        self._require_started()
        if self.step == Step.WAIT:
            self._count("woken_by_work")
            self._start_round(0)
            self._run_rules()
        return self._take()

    def on_timeout(self, timeout: Timeout) -> list[Output]:
        self._out = []
        self._require_started()
        if timeout.height != self.height:
            self._count("stale_timeout")
            return []
        step, r = timeout.step, timeout.round
        if step == TimerKind.NEW_HEIGHT:
            if self.step == Step.NEW_HEIGHT:
                self._begin_height()
                self._schedule(TimerKind.GOSSIP, 0)
        elif step == TimerKind.CHECKPOINT:
            if self.step == Step.WAIT:
                self._count("checkpoint")
                self._start_round(0)
        elif step == TimerKind.PROPOSE:
            if r == self.round and self.step == Step.PROPOSE:  # L57-60
                self._round_events.append("timeout_propose")
                self._vote(VoteKind.PREVOTE, b"")
                self._set_step(Step.PREVOTE)
        elif step == TimerKind.PREVOTE:
            if r == self.round and self.step == Step.PREVOTE:  # L61-64
                self._round_events.append("timeout_prevote")
                self._vote(VoteKind.PRECOMMIT, b"")
                self._set_step(Step.PRECOMMIT)
        elif step == TimerKind.PRECOMMIT:
            if r == self.round and self.step > Step.WAIT:  # L65-67
                self._leave_round(self.round + 1, "timeout_precommit")
        elif step == TimerKind.GOSSIP:
            if self.step > Step.WAIT and self._progress == self._gossiped_at:
                self._gossip()
            self._gossiped_at = self._progress
            self._schedule(TimerKind.GOSSIP, self.round)
        self._run_rules()
        return self._take()

    def on_commit(self, block: bytes, certificate: CommitCertificate) -> list[Output]:
        """A certified block from block sync: decide it if it is for the current height."""
        self._out = []
        self._require_started()
        if certificate.height != self.height or certificate.chain_id != self.chain_id:
            self._count("stale_commit")
            return []
        try:
            if not self.app.validate_block(self.height, block):
                raise LedgerError("block refused by the ledger rules")
            certificate.check(
                self.validators,
                chain_id=self.chain_id,
                height=self.height,
                block_hash=self.app.block_hash(block),
            )
        except LedgerError:
            self._count("bad_commit")
            return []
        self._decide(certificate.round, block, certificate)
        return self._take()

    # --- receiving -----------------------------------------------------------------------
    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("call start() first")

    def _on_message(self, message: Message) -> list[Output]:
        self._out = []
        self._require_started()
        self._receive(message, verified=False)
        if self.step == Step.WAIT and self._heard:
            self._count("woken_by_peer")
            self._start_round(0)
        self._run_rules()
        return self._take()

    def _receive(self, m: Message, *, verified: bool) -> None:
        if m.chain_id != self.chain_id:
            self._count("wrong_chain")
            return
        if m.height < self.height:
            self._count("old_height")
            return
        if m.height > self.height + 1:
            self._count("far_future")
            return
        sender = m.sender
        validators = self._set_of(m.height)
        if not 0 <= sender < len(validators):
            self._count("unknown_validator")
            return
        if isinstance(m, Proposal):
            if sender != validators.proposer(m.height, m.round):
                self._count("wrong_proposer")  # L22/L28/L36/L49: "from proposer(h, r)"
                return
            if not -1 <= m.valid_round < m.round:
                self._count("bad_valid_round")
                return
        if m.height == self.height + 1:
            self._buffer_next(m, verified)
            return
        if isinstance(m, Proposal):
            slot = self._proposals.get(m.round)
            if slot is not None and slot.message == m:
                self._count("duplicate")  # identical to one already verified: no signature check
                return
            if not verified and not self._verify(m):
                return
            if slot is not None:
                self._equivocation(slot.message, m)
                return
        else:
            versions = self.votes.versions(m.round, m.kind, sender)
            if m.block_hash in versions:
                self._count("duplicate")
                return
            if not verified and not self._verify(m):
                return
            if versions:
                self._equivocation(next(iter(versions.values())), m)
                if not self.votes.has_room(m) and not self._wanted(m.block_hash):
                    return
        if sender == self.index:
            # Validly signed with our key, yet not by this process at this height: another
            # process holds the key. Never count it, or we could end up signing against it.
            self._count("own_key_elsewhere")
            return
        admission = self.votes.admit(sender, m.round)
        if admission.evicted is not None:
            self._count("evicted")
            self._drop_proposal(sender, admission.evicted)
        if not admission.kept:
            self._count("round_window")
            return
        self._store(m)

    def _set_of(self, height: int) -> ValidatorSet:
        """The set whose keys sign messages of ``height`` (this one or the next)."""
        if height == self.height or self._validators_at is None:
            return self.validators
        in_force: ValidatorSet = self._validators_at(height)
        return in_force

    def _verify(self, m: Message) -> bool:
        try:
            m.verify(self._set_of(m.height))
        except BadSignature:
            self._count("bad_signature")
            return False
        return True

    def _wanted(self, block_hash: bytes) -> bool:
        """Nil, or the id of a valid proposal of this height: worth an equivocator's vote."""
        if not block_hash:
            return True
        for slots in (self._proposals, self._extra):
            for slot in slots.values():
                if slot.checked and slot.valid and slot.block_hash == block_hash:
                    return True
        return False

    def _equivocation(self, first: Message, second: Message) -> None:
        self._count("equivocation")  # keep the first; the pair is evidence
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append((first, second))
        if isinstance(second, Proposal) and second.round not in self._extra:
            # Keep the other block's bytes too: if it gathers 2f+1 precommits we can decide it.
            self._extra[second.round] = _Slot(second)

    def _buffer_next(self, m: Message, verified: bool) -> None:
        """Messages for height+1: one per (sender, round, kind), a few rounds only."""
        if m.round >= self.max_buffer_rounds:
            self._count("buffer_window")
            return
        key = (m.sender, m.round, signing_slot(m)[2])
        existing = self._buffer.get(key)
        if existing is not None and existing == m:
            self._count("duplicate")
            return
        if not verified and not self._verify(m):
            return  # verified before buffering, so a forgery cannot take a validator's slot
        if existing is not None:
            self._equivocation(existing, m)
            return
        self._buffer[key] = m
        self._count("buffered")

    def _store(self, m: Message) -> None:
        if m.round <= self.round:
            self._progress += 1
        if m.sender != self.index:
            self._heard = True
        if isinstance(m, Proposal):
            self._proposals[m.round] = _Slot(m)
            self.votes.note_sender(m.proposer_index, m.round)
        else:
            self.votes.add(m)

    def _drop_proposal(self, sender: int, round_: int) -> None:
        """The sender's round was evicted: its proposal there goes with its votes."""
        slot = self._proposals.get(round_)
        if slot is not None and slot.message.proposer_index == sender:
            del self._proposals[round_]
            self._extra.pop(round_, None)

    # --- helpers -------------------------------------------------------------------------
    def _count(self, reason: str) -> None:
        self.stats[reason] = self.stats.get(reason, 0) + 1

    def _take(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def _schedule(self, step: TimerKind, round_: int) -> None:
        delay = self.timeouts.delay(step, round_)
        self._out.append(ScheduleTimeout(self.height, round_, step, delay))

    def _set_step(self, step: Step) -> None:
        self.step = step
        self._progress += 1

    def _check(self, slot: _Slot) -> _Slot:
        """valid(v) and id(v), asked of the Application once per proposal."""
        if not slot.checked:
            slot.checked = True
            block = slot.message.block
            try:
                slot.valid = self.app.validate_block(self.height, block)
                if slot.valid:
                    slot.block_hash = self.app.block_hash(block)
            except LedgerError:
                slot.valid = False
            if not slot.valid:
                self._count("invalid_block")
                self._round_events.append("invalid_proposal")
        return slot

    def _sign(self, m: Message) -> None:
        """Persist then broadcast a newly signed message; re-send if this slot is signed."""
        key = signing_slot(m)[1:]
        existing = self._signed.get(key)
        if existing is not None:
            # Write-ahead rule: one message per (height, round, kind), ever. After a restart
            # the algorithm may want something else here; the signed one stands.
            self._out.append(Broadcast(existing))
            return
        if m.round < self._max_signed_round:  # pragma: no cover - rounds only grow
            self._count("refused_lower_round")
            return
        self._signed[key] = m
        self._max_signed_round = m.round
        self._out.append(Persist(m))
        self._out.append(Broadcast(m))
        self._store(m)

    def _vote(self, kind: VoteKind, block_hash: bytes) -> None:
        if self.index is None or self._key is None:
            return  # a follower walks the steps without voting
        if (self.round, int(kind)) in self._signed:
            self._sign(self._signed[(self.round, int(kind))])
            return
        self._sign(
            Vote.sign(
                self._key,
                chain_id=self.chain_id,
                kind=kind,
                height=self.height,
                round_=self.round,
                block_hash=block_hash,
                validator_index=self.index,
            )
        )

    def _persist_lock(self, slot: _Slot) -> None:
        """WAL the proposal we lock on, so the locked block survives a restart."""
        m = slot.message
        if self.index is None or m.proposer_index == self.index:
            return  # a follower signs nothing; our own proposal is already persisted
        digest = m.digest()
        if digest not in self._persisted:
            self._persisted.add(digest)
            self._out.append(Persist(m))

    # --- Algorithm 1 ---------------------------------------------------------------------
    def _leave_round(self, round_: int, reason: str) -> None:
        """The current round ends undecided: say why and what it saw, then StartRound(round_)."""
        self._out.append(RoundChange(self.height, round_, reason, tuple(self._round_events)))
        self._start_round(round_)
    def _begin_height(self) -> None:
        """L10/L54: StartRound(0), unless a quiet chain has nothing to do at this height yet."""
        if self.timeouts.checkpoint is None or self._heard or self.app.has_work(self.height):
            self._start_round(0)
            return
        self._set_step(Step.WAIT)
        self._schedule(TimerKind.CHECKPOINT, 0)

    def _start_round(self, round_: int) -> None:
        """StartRound (L11-21)."""
        self._round_events = []
        self.round = round_  # L12
        self.votes.advance(round_)
        self._set_step(Step.PROPOSE)  # L13
        proposer = self.validators.proposer(self.height, round_)
        # L21 schedules this for non-proposers only. We schedule it for the proposer too (as
        # CometBFT does): a proposer that restarted may re-send a proposal with a valid round
        # whose polka it no longer holds, and must not wait for it forever (L57 is a no-op
        # once it has prevoted).
        self._schedule(TimerKind.PROPOSE, round_)
        if self.index is not None and proposer == self.index:  # L14
            existing = self._signed.get((round_, PROPOSAL_SLOT))
            if existing is not None:
                self._sign(existing)
                return
            assert self._key is not None
            if self.valid_value is not None:  # L15-16
                block, valid_round = self.valid_value, self.valid_round
            else:  # L18
                block, valid_round = self.app.build_block(self.height, round_), -1
            self._sign(  # L19
                Proposal.sign(
                    self._key,
                    chain_id=self.chain_id,
                    height=self.height,
                    round_=round_,
                    block=block,
                    valid_round=valid_round,
                    proposer_index=self.index,
                )
            )

    def _run_rules(self) -> None:
        """Fire every enabled upon-rule until none is; the order matches Algorithm 1's."""
        while self.step > Step.WAIT:
            if self._rule_decide() or self._rule_round_skip():
                continue
            if self.step == Step.PROPOSE and self._rule_proposal():
                continue
            self._rule_prevote_timeout()
            if self._rule_polka_value():
                continue
            if self.step == Step.PREVOTE and self._rule_polka_nil():
                continue
            self._rule_precommit_timeout()
            break

    def _rule_proposal(self) -> bool:
        """L22-33: prevote on the proposal of the current round."""
        slot = self._proposals.get(self.round)
        if slot is None:
            return False
        vr = slot.message.valid_round
        self._check(slot)
        if vr == -1:  # L22
            unlocked = self.locked_round == -1 or self.locked_hash == slot.block_hash
            if slot.valid and unlocked:  # L23
                self._vote(VoteKind.PREVOTE, slot.block_hash)  # L24
            else:
                if slot.valid:
                    self._count("lock_refused_proposal")  # locked on another value
                self._vote(VoteKind.PREVOTE, b"")  # L26
            self._set_step(Step.PREVOTE)  # L27
            return True
        # L28: needs 2f+1 prevotes for id(v) in round vr. An invalid v has no id we could
        # match; the proposal timeout (L57) prevotes nil for it.
        if not slot.valid or not self.votes.prevotes(vr).has_quorum_for(slot.block_hash):
            return False
        self._count("prevote_on_reproposal")
        if self.locked_round <= vr or self.locked_hash == slot.block_hash:  # L29
            if self.locked_hash is not None and self.locked_hash != slot.block_hash:
                self._count("lock_released_by_later_polka")
            self._vote(VoteKind.PREVOTE, slot.block_hash)  # L30
        else:
            self._count("lock_refused_reproposal")
            self._vote(VoteKind.PREVOTE, b"")  # L32
        self._set_step(Step.PREVOTE)  # L33
        return True

    def _rule_prevote_timeout(self) -> None:
        """L34-35: 2f+1 prevotes of any kind, first time in this round."""
        key = (Rule.PREVOTE_TIMEOUT, self.round)
        if (
            self.step == Step.PREVOTE
            and key not in self.fired
            and self.votes.prevotes(self.round).has_quorum_any()
        ):
            self.fired.add(key)
            self._schedule(TimerKind.PREVOTE, self.round)

    def _rule_polka_value(self) -> bool:
        """L36-43: proposal plus 2f+1 prevotes for it: lock and precommit, or update valid."""
        key = (Rule.POLKA_VALUE, self.round)
        if self.step < Step.PREVOTE or key in self.fired:
            return False
        slot = self._proposals.get(self.round)
        if slot is None:
            return False
        prevotes = self.votes.prevotes(self.round)
        if prevotes.quorum_value() is None:
            return False  # no polka at all: spare the validity check
        self._check(slot)
        if not slot.valid or not prevotes.has_quorum_for(slot.block_hash):
            return False
        self.fired.add(key)
        if self.step == Step.PREVOTE:  # L37
            if self.locked_hash is not None and self.locked_hash != slot.block_hash:
                self._count("relocked_on_another_value")
            self.locked_hash, self.locked_round = slot.block_hash, self.round  # L38-39
            self._persist_lock(slot)
            self._vote(VoteKind.PRECOMMIT, slot.block_hash)  # L40
            self._set_step(Step.PRECOMMIT)  # L41
        self.valid_value, self.valid_hash = slot.message.block, slot.block_hash  # L42
        self.valid_round = self.round  # L43
        return True

    def _rule_polka_nil(self) -> bool:
        """L44-46: 2f+1 prevotes for nil: precommit nil."""
        if not self.votes.prevotes(self.round).has_quorum_for(b""):
            return False
        self._round_events.append("polka_nil")
        self._vote(VoteKind.PRECOMMIT, b"")  # L45
        self._set_step(Step.PRECOMMIT)  # L46
        return True

    def _rule_precommit_timeout(self) -> None:
        """L47-48: 2f+1 precommits of any kind, first time in this round."""
        key = (Rule.PRECOMMIT_TIMEOUT, self.round)
        if key not in self.fired and self.votes.precommits(self.round).has_quorum_any():
            self.fired.add(key)
            self._schedule(TimerKind.PRECOMMIT, self.round)

    def _rule_decide(self) -> bool:
        """L49-54: 2f+1 precommits for id(v) in any round r, with v in hand and valid.

        v may come from any proposal of this height with that id, not only round r's: the id
        binds the bytes, and a validator that missed round r's proposal can still decide.
        """
        for round_, block_hash in self.votes.commits():
            slot = self._find_block(block_hash)
            if slot is None:
                continue
            signatures = self.votes.precommits(round_).signatures_for(block_hash)
            cert = CommitCertificate(self.chain_id, self.height, round_, block_hash, signatures)
            self._decide(round_, slot.message.block, cert)
            return True
        return False

    def _find_block(self, block_hash: bytes) -> _Slot | None:
        for slots in (self._proposals, self._extra):
            for slot in slots.values():
                if self._check(slot).valid and slot.block_hash == block_hash:
                    return slot
        return None

    def _decide(self, round_: int, block: bytes, cert: CommitCertificate) -> None:
        self._out.append(Decide(self.height, round_, block, cert))  # L51
        self._reset_height(self.height + 1)  # L52-53
        # L54 waits for the NEW_HEIGHT timer, so the driver commits the block before the
        # Application is asked anything about the next height.
        self._schedule(TimerKind.NEW_HEIGHT, 0)
        buffered = [self._buffer[k] for k in sorted(self._buffer)]
        self._buffer = {}
        for m in buffered:
            self._receive(m, verified=True)

    def _rule_round_skip(self) -> bool:
        """L55-56: f+1 senders of messages for a higher round: go to that round."""
        best = self.votes.skip_target()
        if best is None:
            return False
        self._leave_round(best, "round_skip")
        return True

    # --- gossip and restart ----------------------------------------------------------------
    def _gossip(self) -> None:
        """Stalled: re-send our messages and relay what we hold for the recent rounds."""
        self._count("gossip")
        r = self.round
        out: dict[tuple[int, int, int, int], Message] = {}
        for (round_, kind), m in self._signed.items():
            if round_ >= r - 1:
                out[(round_, kind, m.sender, 0)] = m
        for round_ in {r, self.valid_round}:
            slot = self._proposals.get(round_)
            if slot is not None:
                out[(round_, PROPOSAL_SLOT, slot.message.proposer_index, 0)] = slot.message
        wanted = {(r, VoteKind.PREVOTE), (r, VoteKind.PRECOMMIT), (r - 1, VoteKind.PREVOTE),
                  (r - 1, VoteKind.PRECOMMIT), (self.valid_round, VoteKind.PREVOTE),
                  (self.locked_round, VoteKind.PREVOTE)}
        current = self._proposals.get(r)
        if current is not None:  # the polka the proposal's valid round claims (L28)
            wanted.add((current.message.valid_round, VoteKind.PREVOTE))
        for round_, kind in sorted(wanted):
            vote_set = self.votes.get(round_, kind)
            for n, v in enumerate(() if vote_set is None else vote_set.votes()):
                out[(round_, int(kind), v.validator_index, n)] = v
        for m in out.values():
            self._out.append(Broadcast(m))

    def _restore(self) -> None:
        """Rebuild from the write-ahead log, or start round 0 afresh (L10)."""
        own: list[Message] = []
        for m in self._signed_log:
            if m.height != self.height or m.chain_id != self.chain_id:
                continue
            try:
                m.verify(self.validators)
            except BadSignature:
                self._count("bad_log_entry")
                continue
            if m.sender == self.index:
                own.append(m)
            elif isinstance(m, Proposal):
                self._receive(m, verified=True)  # the proposal we locked on
                self._persisted.add(m.digest())
        if not own:
            self._begin_height()
            return
        for m in own:
            key = signing_slot(m)[1:]
            if key in self._signed:
                continue
            self._signed[key] = m
            self._max_signed_round = max(self._max_signed_round, m.round)
        for key in sorted(self._signed):
            m = self._signed[key]
            self._store(m)
            self._out.append(Broadcast(m))
        top = self._max_signed_round
        self.round = top  # never sign again below the highest round we signed in
        self.votes.advance(top)
        if (top, VoteKind.PRECOMMIT) in self._signed:
            self.step = Step.PRECOMMIT
        elif (top, VoteKind.PREVOTE) in self._signed:
            self.step = Step.PREVOTE
        # The lock is our highest non-nil precommit (L38-39 set both at once); the block is
        # in the proposal persisted with it, which also restores the valid value (L42-43).
        for (round_, kind), m in sorted(self._signed.items(), reverse=True):
            if kind == VoteKind.PRECOMMIT and isinstance(m, Vote) and m.block_hash:
                self.locked_round, self.locked_hash = round_, m.block_hash
                slot = self._find_block(m.block_hash)
                if slot is not None:
                    self.valid_round, self.valid_hash = round_, m.block_hash
                    self.valid_value = slot.message.block
                    self.fired.add((Rule.POLKA_VALUE, round_))
                break
        if self.step == Step.NEW_HEIGHT:
            self._start_round(top)  # only a proposal signed at the top round: re-send it
        else:
            self._progress += 1

    # --- introspection (tests, metrics) ----------------------------------------------------
    def signed_messages(self) -> Iterable[Message]:
        return list(self._signed.values())
