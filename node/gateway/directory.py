"""The elections the gateway knows: the genesis's, then whatever the chain's registry
defines later, read from the validators (``ballot_getElections``).

Definitions are decoded from their canonical bytes with the chain's own decoder and
never change once made, so a definition learnt once is kept. Phases are informational
here (the ballot's window is checked at the gateway; the registry phase is the
validators' to enforce), so a phase a few seconds stale is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ledger.elections import ElectionLookup, Elections
from ledger.errors import LedgerError
from ledger.genesis import MAX_ELECTIONS, ElectionDef, Genesis
from node.gateway.upstream import Upstream, UpstreamUnavailable
from verifier.rpc_client import RpcError

log = logging.getLogger(__name__)

REFRESH_S = 2.0  # background refresh period
MISS_REFRESH_S = 0.5  # at most one extra refresh this often, for an election not known yet
PHASES = frozenset({"setup", "open", "closed", "tallied"})


class BadDirectoryAnswer(LedgerError):
    code = "bad_directory_answer"


def parse_elections(answer: Any, known: ElectionLookup) -> tuple[list[ElectionDef], dict[str, str]]:
    """A ``ballot_getElections`` answer as definitions and phases; refuses anything else.

    ``known``: definitions already decoded, by id (each is checked byte for byte)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("elections"), list):
        raise BadDirectoryAnswer("ballot_getElections: not an object with a list of elections")
    rows = answer["elections"]
    if len(rows) > MAX_ELECTIONS:
        raise BadDirectoryAnswer(f"ballot_getElections: more than {MAX_ELECTIONS} elections")
    defined: list[ElectionDef] = []
    phases: dict[str, str] = {}
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("definition"), str) or row.get("phase") not in PHASES:
            raise BadDirectoryAnswer("ballot_getElections: each election needs a definition and a phase")
        try:
            encoded = bytes.fromhex(row["definition"])
        except ValueError:
            raise BadDirectoryAnswer("ballot_getElections: a definition is not hex") from None
        election = ElectionDef.decode(encoded)
        earlier = known.get(election.election_id)
        # a definition never changes; only a ceremony's key arrives later
        if earlier is not None and earlier.as_defined() != election.as_defined():
            raise BadDirectoryAnswer(f"ballot_getElections: election {election.election_id} changed its definition")
        defined.append(election)
        phases[election.election_id] = row["phase"]
    return defined, phases


class ElectionDirectory:
    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        # Every definition known, in definition order; replaced (never changed in place)
        # when a refresh brings a new one or a ceremony's key, so a submission reads it as is.
        self._elections = Elections(genesis.elections)
        self._phases: dict[str, str] = {}
        self._last_refresh = float("-inf")
        self._lock = asyncio.Lock()

    def get(self, election_id: str, /) -> ElectionDef | None:
        return self._elections.get(election_id)

    def phase(self, election_id: str) -> str | None:
        """The registry phase last heard from a validator (None before any answer)."""
        return self._phases.get(election_id)

    def elections(self) -> Elections:
        """What the gateway's admission checks against: every definition known, each
        treated as in its open phase (the window still applies)."""
        return self._elections

    async def refresh(self, upstream: Upstream) -> None:
        async with self._lock:
            self._last_refresh = time.monotonic()
            answer = await upstream.call("ballot_getElections")
            defined, phases = parse_elections(answer, self._elections)
            changed = {e.election_id: e for e in defined if self._elections.get(e.election_id) != e}
            if changed:  # a new election, or one with its key now
                for eid in changed:
                    if eid not in self._elections:
                        log.info("election %s defined on chain", eid)
                kept = [changed.pop(e.election_id, e) for e in self._elections]
                self._elections = Elections((*kept, *changed.values()))
            self._phases = phases

    async def lookup(self, election_id: str, upstream: Upstream | None) -> ElectionDef | None:
        """The definition, asking the validators once more if it is not known yet (at
        most every MISS_REFRESH_S, so unknown ids cannot make the gateway hammer them)."""
        election = self._elections.get(election_id)
        if election is not None or upstream is None:
            return election
        if time.monotonic() - self._last_refresh >= MISS_REFRESH_S:
            await self.refresh_quietly(upstream)
        return self._elections.get(election_id)

    async def refresh_quietly(self, upstream: Upstream) -> None:
        try:
            await self.refresh(upstream)
        except (UpstreamUnavailable, RpcError, LedgerError) as exc:
            log.warning("could not refresh the election directory: %s", exc)

    async def refresh_loop(self, upstream: Upstream) -> None:
        while True:
            await self.refresh_quietly(upstream)
            await asyncio.sleep(REFRESH_S)
