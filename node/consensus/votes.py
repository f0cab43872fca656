"""The votes of one height: storage, per-sender bounds, eviction, and quorum questions.

Everything the consensus core counts lives here, so that the rules in ``core.py`` ask
questions by name (:meth:`VoteSet.has_quorum_for`, :meth:`VoteSet.has_quorum_any`,
:meth:`HeightVotes.skip_target`, ...) instead of adding up powers inline, and so that
storing and forgetting a message are each written once.

Memory bound. A height's votes are held per (round, kind) in a :class:`VoteSet`, and per
sender at most :data:`MAX_VALUES_PER_SENDER` distinct values in one (round, kind), plus the
values the core asks to keep beyond that (nil and the ids of the height's valid proposals:
at most two per round). Rounds at or below the current one are bounded by the round
number, which only honest timeouts or f+1 senders move. Above the current round a sender
is kept in at most ``max_future_rounds`` rounds; a message for a higher round evicts the
sender's lowest one, and a message for a lower round than all of those is refused. So one
Byzantine validator, whatever it sends, holds at most
``(current round + 1 + max_future_rounds) * 2 * (MAX_VALUES_PER_SENDER + wanted)`` votes,
and nothing is left behind for a round it no longer holds: empty sets are deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ledger.block import CommitSignature, VoteKind
from ledger.genesis import ValidatorSet
from node.consensus.messages import Vote

MAX_VALUES_PER_SENDER = 3  # distinct values kept per (sender, round, kind) beyond wanted ones
_NO_VERSIONS: Mapping[bytes, Vote] = {}


class VoteSet:
    """The prevotes or the precommits of one round of one height.

    An equivocating sender may hold several values: like the paper's message counts, it
    counts once for each value and once in the "any value" total, so every correct process
    can see the polka another saw whichever of an equivocator's votes reached it first.
    """

    __slots__ = ("_by_sender", "_power_any", "_power_for", "kind", "round", "validators")

    def __init__(self, validators: ValidatorSet, round_: int, kind: VoteKind) -> None:
        self.validators = validators
        self.round = round_
        self.kind = kind
        self._by_sender: dict[int, dict[bytes, Vote]] = {}  # sender -> block hash -> vote
        self._power_for: dict[bytes, int] = {}  # block hash (b"" for nil) -> power
        self._power_any = 0  # power of distinct senders, whatever they voted for

    # --- storage ------------------------------------------------------------------------
    def add(self, vote: Vote) -> None:
        """Count ``vote`` (the caller checked its signature, round, kind and bounds)."""
        power = self.validators.validators[vote.validator_index].power
        versions = self._by_sender.setdefault(vote.validator_index, {})
        if vote.block_hash in versions:
            return
        if not versions:
            self._power_any += power
        versions[vote.block_hash] = vote
        self._power_for[vote.block_hash] = self._power_for.get(vote.block_hash, 0) + power

    def remove_sender(self, sender: int) -> bool:
        """Forget every vote of ``sender``; False if it had none."""
        versions = self._by_sender.pop(sender, None)
        if not versions:
            return False
        power = self.validators.validators[sender].power
        self._power_any -= power
        for block_hash in versions:
            left = self._power_for[block_hash] - power
            if left:
                self._power_for[block_hash] = left
            else:
                del self._power_for[block_hash]
        return True

    def versions(self, sender: int) -> Mapping[bytes, Vote]:
        """The values ``sender`` voted for here, first one first."""
        return self._by_sender.get(sender, _NO_VERSIONS)

    def votes(self) -> Iterator[Vote]:
        for sender in sorted(self._by_sender):
            yield from self._by_sender[sender].values()

    def is_empty(self) -> bool:
        return not self._by_sender

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._by_sender.values())

    # --- questions ----------------------------------------------------------------------
    def power_for(self, block_hash: bytes) -> int:
        return self._power_for.get(block_hash, 0)

    def has_quorum_for(self, block_hash: bytes) -> bool:
        """2f+1 for this value (``b""``: for nil): a polka, or a commit for precommits."""
        return self.validators.has_quorum(self._power_for.get(block_hash, 0))

    def has_quorum_any(self) -> bool:
        """2f+1 votes of any value (L34, L47)."""
        return self.validators.has_quorum(self._power_any)

    def quorum_value(self) -> bytes | None:
        """A non-nil value with 2f+1 votes, or None (two only if more than f equivocated)."""
        for block_hash in sorted(self._power_for):
            if block_hash and self.validators.has_quorum(self._power_for[block_hash]):
                return block_hash
        return None

    def signatures_for(self, block_hash: bytes) -> tuple[CommitSignature, ...]:
        """The signatures of the votes for ``block_hash``, in validator order (a certificate)."""
        return tuple(
            CommitSignature(i, self._by_sender[i][block_hash].signature)
            for i in sorted(self._by_sender)
            if block_hash in self._by_sender[i]
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VoteSet):
            return NotImplemented
        return (
            (self.round, self.kind, self._power_any) == (other.round, other.kind, other._power_any)
            and self._by_sender == other._by_sender
            and self._power_for == other._power_for
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"VoteSet(round={self.round}, kind={self.kind.name}, votes={self._by_sender!r})"


@dataclass(frozen=True)
class Admission:
    """What :meth:`HeightVotes.admit` decided for one (sender, round)."""

    kept: bool
    evicted: int | None = None  # the sender's round forgotten to make room


class HeightVotes:
    """Every vote of one height, plus which senders are ahead of the current round (L55).

    The "ahead" relation is kept only for rounds above the current one, the only rounds
    L55 asks about; :meth:`advance` drops the rest, so the round-skip question costs the
    same whatever rounds a sender has tried before.
    """

    def __init__(self, validators: ValidatorSet, *, max_future_rounds: int) -> None:
        self.validators = validators
        self.max_future_rounds = max_future_rounds
        self.round = 0
        self._sets: dict[tuple[int, VoteKind], VoteSet] = {}
        self._ahead: dict[int, set[int]] = {}  # sender -> rounds above self.round it sent in
        self._ahead_power: dict[int, int] = {}  # round above self.round -> its senders' power
        self._commits: set[tuple[int, bytes]] = set()  # (round, id) with 2f+1 precommits

    # --- storage ------------------------------------------------------------------------
    def get(self, round_: int, kind: VoteKind) -> VoteSet | None:
        return self._sets.get((round_, kind))

    def prevotes(self, round_: int) -> VoteSet:
        """The prevotes of ``round_`` (an empty set, not stored, when there are none)."""
        return self._sets.get((round_, VoteKind.PREVOTE)) or VoteSet(
            self.validators, round_, VoteKind.PREVOTE
        )

    def precommits(self, round_: int) -> VoteSet:
        return self._sets.get((round_, VoteKind.PRECOMMIT)) or VoteSet(
            self.validators, round_, VoteKind.PRECOMMIT
        )

    def versions(self, round_: int, kind: VoteKind, sender: int) -> Mapping[bytes, Vote]:
        vote_set = self._sets.get((round_, kind))
        return _NO_VERSIONS if vote_set is None else vote_set.versions(sender)

    def has_room(self, vote: Vote) -> bool:
        """Whether ``vote`` fits the sender's bound of distinct values in its (round, kind)."""
        return len(self.versions(vote.round, vote.kind, vote.validator_index)) < MAX_VALUES_PER_SENDER

    def admit(self, sender: int, round_: int) -> Admission:
        """Make room for a message of ``sender`` in ``round_``, or refuse it.

        Above the current round a sender keeps at most ``max_future_rounds`` rounds. Honest
        senders only move up, so their newest rounds are the ones kept: a higher round
        evicts the sender's lowest, a lower one than all kept is refused and stores nothing.
        """
        if round_ <= self.round:
            return Admission(True)
        rounds = self._ahead.get(sender, ())
        if round_ in rounds or len(rounds) < self.max_future_rounds:
            return Admission(True)
        lowest = min(rounds)
        if round_ < lowest:
            return Admission(False)
        self.evict(sender, lowest)
        return Admission(True, lowest)

    def add(self, vote: Vote) -> None:
        """Store ``vote`` (admitted, verified, within bounds)."""
        key = (vote.round, vote.kind)
        vote_set = self._sets.get(key)
        if vote_set is None:
            vote_set = self._sets[key] = VoteSet(self.validators, vote.round, vote.kind)
        vote_set.add(vote)
        self.note_sender(vote.validator_index, vote.round)
        if vote.kind == VoteKind.PRECOMMIT and vote.block_hash and vote_set.has_quorum_for(vote.block_hash):
            self._commits.add((vote.round, vote.block_hash))

    def note_sender(self, sender: int, round_: int) -> None:
        """Record that ``sender`` sent a message (a vote, or a proposal) in ``round_``."""
        if round_ <= self.round:
            return
        rounds = self._ahead.setdefault(sender, set())
        if round_ not in rounds:
            rounds.add(round_)
            power = self.validators.validators[sender].power
            self._ahead_power[round_] = self._ahead_power.get(round_, 0) + power

    def evict(self, sender: int, round_: int) -> None:
        """Forget every vote of ``sender`` in ``round_``, as if it had never sent them."""
        for kind in (VoteKind.PREVOTE, VoteKind.PRECOMMIT):
            vote_set = self._sets.get((round_, kind))
            if vote_set is None:
                continue
            lost = list(vote_set.versions(sender))
            vote_set.remove_sender(sender)
            if vote_set.is_empty():
                del self._sets[(round_, kind)]
            if kind == VoteKind.PRECOMMIT:
                for block_hash in lost:
                    if block_hash and not vote_set.has_quorum_for(block_hash):
                        self._commits.discard((round_, block_hash))
        rounds = self._ahead.get(sender)
        if rounds is not None and round_ in rounds:
            rounds.discard(round_)
            if not rounds:
                del self._ahead[sender]
            left = self._ahead_power[round_] - self.validators.validators[sender].power
            if left:
                self._ahead_power[round_] = left
            else:
                del self._ahead_power[round_]

    def advance(self, round_: int) -> None:
        """The core entered ``round_``: rounds up to it are no longer "ahead"."""
        self.round = round_
        for round_ahead in [r for r in self._ahead_power if r <= round_]:
            del self._ahead_power[round_ahead]
        for sender in list(self._ahead):
            rounds = self._ahead[sender]
            rounds.difference_update([r for r in rounds if r <= round_])
            if not rounds:
                del self._ahead[sender]

    # --- questions ----------------------------------------------------------------------
    def skip_target(self) -> int | None:
        """L55: the highest round above the current one with messages from f+1 power."""
        total = self.validators.total_power
        best = None
        for round_, power in self._ahead_power.items():
            if 3 * power > total and (best is None or round_ > best):  # f+1: one is correct
                best = round_
        return best

    def commits(self) -> list[tuple[int, bytes]]:
        """(round, id) pairs with 2f+1 precommits for id, lowest round first (L49)."""
        return sorted(self._commits)

    def rounds_ahead(self, sender: int) -> frozenset[int]:
        return frozenset(self._ahead.get(sender, ()))

    def size(self) -> int:
        """Votes held: what the memory bound above limits."""
        return sum(len(vote_set) for vote_set in self._sets.values())

    def is_empty(self) -> bool:
        return not self._sets and not self._ahead

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeightVotes):
            return NotImplemented
        return (
            self.round == other.round
            and self._sets == other._sets
            and self._ahead == other._ahead
            and self._ahead_power == other._ahead_power
            and self._commits == other._commits
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"HeightVotes(round={self.round}, sets={sorted(self._sets)}, ahead={self._ahead})"
