"""Replay: every block from genesis through the ledger rules, and the tally.

The same ``ledger.rules.apply_block`` the validators run; the only difference is where
the chain-so-far lives (an index built as the replay goes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ledger.block import Block, CommitCertificate
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.rules import BlockEffects, apply_block
from ledger.state import ChainTip
from verifier.bundle import BundleLine


class MemoryView:
    """The chain-so-far as in-memory indexes (tracking codes and counted credentials)."""

    def __init__(self) -> None:
        self.codes: set[bytes] = set()
        self.counted: dict[tuple[str, bytes], bytes] = {}

    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        return self.counted.get((election_id, credential))

    def has_ballot(self, tracking_code: bytes) -> bool:
        return tracking_code in self.codes

    def apply(self, effects: BlockEffects) -> None:
        for checked in effects.ballots:
            self.codes.add(checked.tracking_code)
        for election_id, credential, code in effects.counted:
            self.counted[(election_id, credential)] = code


@dataclass
class ElectionTally:
    election_id: str
    choices: tuple[str, ...]
    ballots_recorded: int = 0
    counted_payload: dict[bytes, bytes] = field(default_factory=dict)  # credential -> payload

    def result(self) -> dict[str, int]:
        counts: Counter[int] = Counter(p[0] for p in self.counted_payload.values() if len(p) == 1)
        return {choice: counts.get(i, 0) for i, choice in enumerate(self.choices)}


@dataclass
class ReplayResult:
    genesis_hash: bytes
    tip: ChainTip
    blocks: int = 0
    ballots: int = 0
    tallies: dict[str, ElectionTally] = field(default_factory=dict)


class VerificationFailed(LedgerError):
    code = "verification_failed"


def replay(
    genesis: Genesis,
    lines: Iterable[BundleLine],
    *,
    on_block: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replay every line; raise the first refusal (a LedgerError with its location)."""
    tip = ChainTip.at_genesis(genesis)
    view = MemoryView()
    result = ReplayResult(genesis.hash(), tip)
    for e in genesis.elections:
        result.tallies[e.election_id] = ElectionTally(e.election_id, e.choices)
    for line in lines:
        where = f"block line {line.line_number}"
        try:
            block = Block.decode(line.block)
            certificate = CommitCertificate.decode(line.certificate)
        except LedgerError as exc:
            raise exc.at(where) from None
        effects = apply_block(genesis, tip, view, block)
        try:
            certificate.check(
                genesis.validators, chain_id=genesis.chain_id, height=block.height, block_hash=block.hash()
            )
        except LedgerError as exc:
            raise exc.at(f"block {block.height} certificate") from None
        view.apply(effects)
        for checked in effects.ballots:
            tally = result.tallies[checked.election.election_id]
            tally.ballots_recorded += 1
            tally.counted_payload[checked.envelope.credential] = _counted(
                tally, checked.envelope.credential, checked.envelope.payload, checked.election.revoting
            )
        tip = effects.tip
        result.blocks += 1
        result.ballots += len(effects.ballots)
        if on_block is not None:
            on_block(block.height, len(effects.ballots))
    result.tip = tip
    return result


def _counted(tally: ElectionTally, credential: bytes, payload: bytes, policy: str) -> bytes:
    # The rules have already refused a second ballot under first-counts; under
    # last-counts the later ballot replaces the earlier one.
    if policy == "first-counts":
        return tally.counted_payload.get(credential, payload)
    return payload
