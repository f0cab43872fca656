"""Counting: which ballot counts for each credential, and the per-choice result.

Shared by the node (which publishes results) and the verifier (which recomputes them),
so both count by the same rule: one ballot per credential, the first under
``first-counts`` and the last under ``last-counts``. Counts are kept incrementally; the
payload that currently counts for each credential lives in a mapping the caller
chooses (a dict, or the verifier's on-disk index for flat memory at any size).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.ballot import BallotEnvelope
from ledger.elections import ElectionLookup
from ledger.genesis import PLAINTEXT_SCHEME, ElectionDef, Genesis
from ledger.rules import BlockEffects

CountedKey = tuple[str, bytes]  # (election id, credential)


class CountedStore(Protocol):
    """Where the payload counting for each credential is kept (a dict will do)."""

    def get(self, key: CountedKey) -> bytes | None: ...

    def __setitem__(self, key: CountedKey, value: bytes) -> None: ...


@dataclass
class ElectionTally:
    election: ElectionDef
    ballots_recorded: int = 0
    ballots_counted: int = 0
    counts: Counter[bytes] = field(default_factory=Counter)  # payload -> ballots counted

    def to_json_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "ballots_recorded": self.ballots_recorded,
            "ballots_counted": self.ballots_counted,
        }
        if self.election.payload_scheme == PLAINTEXT_SCHEME:
            obj["tally"] = {c: self.counts.get(bytes([i]), 0) for i, c in enumerate(self.election.choices)}
        return obj


class Tally:
    def __init__(self, genesis: Genesis, counted: CountedStore | None = None) -> None:
        self.height = 0
        self.elections = {e.election_id: ElectionTally(e) for e in genesis.elections}
        self.counted: CountedStore = {} if counted is None else counted

    def define(self, election: ElectionDef) -> None:
        """Count an election defined after genesis from now on (idempotent)."""
        if election.election_id not in self.elections:
            self.elections[election.election_id] = ElectionTally(election)

    def record_block(self, effects: BlockEffects) -> None:
        for election in effects.defined:
            self.define(election)
        for checked in effects.ballots:
            self.record(checked.envelope)
        self.height = effects.tip.height

    def record(self, envelope: BallotEnvelope) -> None:
        """Count a ballot already accepted by the chain rules, in log order."""
        tally = self.elections[envelope.election_id]
        key = (envelope.election_id, envelope.credential)
        previous = self.counted.get(key)
        tally.ballots_recorded += 1
        # Per-payload counts only where payloads are choices; opaque ones are decrypted
        # and counted elsewhere, so only how many count is kept here.
        plaintext = tally.election.payload_scheme == PLAINTEXT_SCHEME
        if previous is None:
            tally.ballots_counted += 1
        elif tally.election.revoting == "last-counts":
            if plaintext:
                tally.counts[previous] -= 1
        else:
            return  # first-counts: the rules refuse a second ballot; nothing to change
        if plaintext:
            tally.counts[envelope.payload] += 1
        self.counted[key] = envelope.payload

    def snapshot(self) -> dict[str, Any]:
        """The counts so far, to resume from (the counted payloads live in ``counted``)."""
        return {
            "height": self.height,
            "elections": {
                eid: [t.ballots_recorded, t.ballots_counted, {p.hex(): n for p, n in sorted(t.counts.items())}]
                for eid, t in self.elections.items()
            },
        }

    def restore(self, snapshot: dict[str, Any], definitions: ElectionLookup) -> None:
        """Counts as :meth:`snapshot` saved them (for the same genesis); ``definitions``
        finds the elections defined after genesis that it names."""
        elections = snapshot["elections"]
        for eid in elections:
            election = self.elections[eid].election if eid in self.elections else definitions.get(eid)
            if election is None:
                raise ValueError(f"snapshot counts election {eid!r}, which is not defined")
            self.define(election)
        if set(elections) != set(self.elections):
            raise ValueError("snapshot is for other elections")
        self.height = int(snapshot["height"])
        for eid, (recorded, counted, counts) in elections.items():
            t = self.elections[eid]
            t.ballots_recorded, t.ballots_counted = int(recorded), int(counted)
            t.counts = Counter({bytes.fromhex(p): int(n) for p, n in counts.items()})

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "format": "ballot-ledger/results/v1",
            "height": self.height,
            "elections": {eid: t.to_json_obj() for eid, t in self.elections.items()},
        }
