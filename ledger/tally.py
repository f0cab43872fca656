"""Counting: which ballot counts for each credential, and the per-choice result.

Shared by the node (which publishes results) and the verifier (which recomputes them),
so both count by the same rule: one ballot per credential, the first under
``first-counts`` and the last under ``last-counts``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ledger.ballot import BallotEnvelope
from ledger.genesis import ElectionDef, Genesis
from ledger.rules import BlockEffects


@dataclass
class ElectionTally:
    election: ElectionDef
    ballots_recorded: int = 0
    counted: dict[bytes, bytes] = field(default_factory=dict)  # credential -> payload

    def record(self, credential: bytes, payload: bytes) -> None:
        self.ballots_recorded += 1
        if self.election.revoting == "last-counts" or credential not in self.counted:
            self.counted[credential] = payload

    def to_json_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "ballots_recorded": self.ballots_recorded,
            "ballots_counted": len(self.counted),
        }
        if self.election.payload_scheme == "plaintext-choice/v1":
            counts: Counter[int] = Counter(p[0] for p in self.counted.values())
            obj["tally"] = {c: counts.get(i, 0) for i, c in enumerate(self.election.choices)}
        return obj


class Tally:
    def __init__(self, genesis: Genesis) -> None:
        self.height = 0
        self.elections = {e.election_id: ElectionTally(e) for e in genesis.elections}

    def record_block(self, effects: BlockEffects) -> None:
        for checked in effects.ballots:
            self.record(checked.envelope)
        self.height = effects.tip.height

    def record(self, envelope: BallotEnvelope) -> None:
        """Count a ballot already accepted by the chain rules, in log order."""
        self.elections[envelope.election_id].record(envelope.credential, envelope.payload)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "format": "ballot-ledger/results/v1",
            "height": self.height,
            "elections": {eid: t.to_json_obj() for eid, t in self.elections.items()},
        }
