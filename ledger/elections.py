"""The elections a chain knows on one state: the rules' one source of definitions.

On a chain that runs the registry, an election exists once a block (or the genesis)
defined it there, and its phase is the registry's; ``contracts.engine`` reads both from
the state a block builds on. On a chain without contracts, the genesis elections are all
there is, each in its open phase for good, so only its window decides.
Definitions never change once made, so a checked ballot's definition stays valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ledger.genesis import ElectionDef, Genesis


class ElectionLookup(Protocol):
    """What a check of one ballot needs: a definition by id (a dict will do)."""

    def get(self, election_id: str, /) -> ElectionDef | None: ...


@dataclass(frozen=True)
class Elections:
    """Definitions in the order they were made, and each one's registry phase
    (``phases`` in the same order, lower-case names: "setup", "open", "closed",
    "tallied"; None on a chain without a registry, where every one is open)."""

    defined: tuple[ElectionDef, ...]
    phases: tuple[str, ...] | None = None
    _by_id: dict[str, ElectionDef] = field(init=False, repr=False, compare=False)
    _phase: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.phases is not None and len(self.phases) != len(self.defined):
            raise ValueError("one phase per definition")
        object.__setattr__(self, "_by_id", {e.election_id: e for e in self.defined})
        phases = self.phases if self.phases is not None else ("open",) * len(self.defined)
        object.__setattr__(self, "_phase", {e.election_id: p for e, p in zip(self.defined, phases, strict=True)})

    @classmethod
    def of_genesis(cls, genesis: Genesis) -> Elections:
        """A chain without contracts: the genesis elections, each open within its window."""
        return cls(genesis.elections)

    def get(self, election_id: str, /) -> ElectionDef | None:
        return self._by_id.get(election_id)

    def __contains__(self, election_id: object) -> bool:
        return election_id in self._by_id

    def __iter__(self) -> Iterator[ElectionDef]:
        return iter(self.defined)

    def __len__(self) -> int:
        return len(self.defined)

    def phase(self, election_id: str) -> str | None:
        return self._phase.get(election_id)

    def in_open_phase(self, election_id: str) -> bool:
        return self._phase.get(election_id) == "open"

    def is_open(self, election: ElectionDef, time_ms: int) -> bool:
        """Whether ballots of ``election`` may enter a block at ``time_ms`` that builds on
        this state: inside its voting window and in its open phase."""
        return election.is_open_at(time_ms) and self.in_open_phase(election.election_id)

    def changed_since(self, earlier: Elections) -> tuple[ElectionDef, ...]:
        """Elections defined after ``earlier`` (a state this one follows), or given their
        key there by their trustees' ceremony: the only way a definition changes."""
        return tuple(e for e in self.defined if earlier.get(e.election_id) != e)

    def ballot_counts(self, election_ids: Iterable[str]) -> tuple[tuple[str, int], ...]:
        """The checkpoint's counts: ballots per election in a block, in definition order
        (the proposer builds them with this, every validator re-derives them with this);
        ids not defined here are left out."""
        counts: dict[str, int] = {}
        for eid in election_ids:
            counts[eid] = counts.get(eid, 0) + 1
        return tuple((e.election_id, counts[e.election_id]) for e in self.defined if e.election_id in counts)
