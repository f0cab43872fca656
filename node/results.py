"""The count after every height, computed once: one tally that follows the chain.

``ballot_getResults`` used to replay blocks 1..h for each call. Here one
``ledger.tally.Tally`` is extended block by block (a bounded slice at a time, by the
RPC's read worker) and the counts are recorded at every height where they changed, so
an answer for any counted height is a binary search. Memory: one row of integers per
block that carried ballots, and, for last-counts elections only, the payload counting
for each credential (the tally needs it to move a revote's count). First-counts
elections need no such map: the chain's rules refuse a credential's second ballot, so
every ballot recorded there is its credential's first.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

from ledger.ballot import BallotEnvelope
from ledger.block import Block
from ledger.elections import ElectionLookup
from ledger.genesis import PLAINTEXT_SCHEME, ElectionDef, Genesis
from ledger.tally import CountedKey, ElectionTally, Tally


class _LastCountsOnly:
    """The tally's counted-payload map, kept for last-counts elections only."""

    def __init__(self, last_counts: AbstractSet[str]) -> None:
        self._last_counts = last_counts
        self._payloads: dict[CountedKey, bytes] = {}

    def get(self, key: CountedKey) -> bytes | None:
        return self._payloads.get(key)

    def __setitem__(self, key: CountedKey, value: bytes) -> None:
        if key[0] in self._last_counts:
            self._payloads[key] = value


class ResultsIndex:
    """Not thread-safe: the RPC's read worker is its one user."""

    def __init__(self, genesis: Genesis, read_block: Callable[[int], Block], definitions: ElectionLookup) -> None:
        """``definitions``: every election defined up to the tip (``Chain.definitions``)."""
        self.genesis = genesis
        self._read_block = read_block
        self._definitions = definitions
        self._last_counts: set[str] = set()
        self._tally = Tally(genesis, _LastCountsOnly(self._last_counts))
        self._elections: list[ElectionTally] = []
        for e in genesis.elections:
            self._define(e)
        # Rows grow as elections are defined: row i covers the first _row_elections[i].
        self._heights = array("q")
        self._starts = array("q")
        self._row_elections = array("q")
        self._rows = array("q")

    def _define(self, election: ElectionDef) -> None:
        self._tally.define(election)
        if election.revoting == "last-counts":
            self._last_counts.add(election.election_id)
        self._elections.append(self._tally.elections[election.election_id])

    @property
    def height(self) -> int:
        """The height counted up to."""
        return self._tally.height

    @staticmethod
    def _choices(election: ElectionDef) -> int:
        return len(election.choices) if election.payload_scheme == PLAINTEXT_SCHEME else 0

    def extend(self, tip: int, max_ballots: int) -> int:
        """Count blocks after :attr:`height`, up to ``tip``, stopping after the block that
        reaches ``max_ballots``; answers the height counted up to."""
        counted = 0
        while self._tally.height < tip and counted < max_ballots:
            height = self._tally.height + 1
            block = self._read_block(height)
            for raw in block.ballots:
                envelope = BallotEnvelope.decode(raw)
                if envelope.election_id not in self._tally.elections:
                    election = self._definitions.get(envelope.election_id)
                    if election is None:  # never for a committed block: the rules found it
                        raise ValueError(f"block {height} counts undefined election {envelope.election_id!r}")
                    self._define(election)
                self._tally.record(envelope)
            self._tally.height = height
            if block.ballots:
                self._heights.append(height)
                self._starts.append(len(self._rows))
                self._row_elections.append(len(self._elections))
                self._rows.extend(self._row())
            counted += len(block.ballots)
        return self._tally.height

    def _row(self) -> list[int]:
        row: list[int] = []
        for t in self._elections:
            row += [t.ballots_recorded, t.ballots_counted]
            row += [t.counts.get(bytes([i]), 0) for i in range(self._choices(t.election))]
        return row

    def at(self, height: int) -> dict[str, Any]:
        """The results after ``height`` (at most :attr:`height`), as ``Tally.to_json_obj``."""
        if height > self._tally.height:
            raise ValueError(f"results are counted up to height {self._tally.height}, not {height}")
        i = bisect.bisect_right(self._heights, height) - 1
        if i >= 0:
            end = self._starts[i + 1] if i + 1 < len(self._starts) else len(self._rows)
            row, shown = self._rows[self._starts[i] : end], self._elections[: self._row_elections[i]]
        else:  # before any ballot: the genesis elections, all at zero
            shown = self._elections[: len(self.genesis.elections)]
            row = array("q", [0] * sum(2 + self._choices(t.election) for t in shown))
        elections: dict[str, Any] = {}
        at = 0
        for t in shown:
            n = self._choices(t.election)
            obj: dict[str, Any] = {"ballots_recorded": row[at], "ballots_counted": row[at + 1]}
            if t.election.payload_scheme == PLAINTEXT_SCHEME:
                obj["tally"] = {c: row[at + 2 + i] for i, c in enumerate(t.election.choices)}
            elections[t.election.election_id] = obj
            at += 2 + n
        return {"format": "ballot-ledger/results/v1", "height": height, "elections": elections}

