"""Compact proposals: a proposal whose block names its ballots by tracking code.

Every ballot reaches every validator by gossip before a block carries it, so a proposal
that carries the ballots again sends each one twice over every link. At 4,000 ballots a
proposal is 2.9 MB, and under load it spent up to 0.9 s in flight: it crosses the
sender's and the receiver's event loops a socket buffer at a time, and both loops are
busy admitting ballots. Named by tracking code (keccak256 of its bytes) a ballot costs 32
bytes instead of ~720, so the same proposal is ~130 KB.

A receiver puts the ballots back from its own mempool and asks the proposer for the
whole proposal only when one is missing (gossip dropped or still on its way). The
proposer signs keccak256 of the whole block, so a rebuilt proposal verifies only if it
is, byte for byte, the block that was signed: a wrong or forged name cannot slip a
different ballot in, it only makes the proposal fail its signature check.

Pure: no I/O; the node supplies the mempool lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ledger import codec
from ledger.block import MAX_BLOCK_BYTES, Block
from ledger.errors import BadEncoding
from ledger.hashing import HASH_SIZE
from node.consensus.messages import Proposal

MAX_REQUEST_BYTES = 32


def compact_proposal(proposal: Proposal, code_of: Callable[[bytes], bytes]) -> bytes:
    """The COMPACT_PROPOSAL payload for ``proposal``: the Proposal encoding with each
    ballot of its block replaced by ``code_of(ballot)``, its tracking code."""
    block = Block.decode(proposal.block)
    names = tuple(code_of(raw) for raw in block.ballots)
    return replace(proposal, block=Block(block.header, names, block.transactions, block.last_commit).encode()).encode()


@dataclass(frozen=True)
class Rebuilt:
    """A compact proposal put back together (``proposal``), or the ballots it names that
    this node does not hold (``missing``: tracking codes; ``proposal`` is then None)."""

    height: int
    round: int
    proposal: Proposal | None
    missing: tuple[bytes, ...] = ()


def rebuild_proposal(payload: bytes, ballot_by_code: Callable[[bytes], bytes | None]) -> Rebuilt:
    """The full proposal a COMPACT_PROPOSAL payload names, its ballots taken from
    ``ballot_by_code``. BadEncoding if the payload is malformed, names a ballot by anything
    but a 32-byte code, or names ballots that together exceed a block's size limit (the
    same code named over and over must not build a huge block)."""
    skeleton_proposal = Proposal.decode(payload)
    skeleton = Block.decode(skeleton_proposal.block)
    ballots: list[bytes] = []
    missing: list[bytes] = []
    total = len(skeleton_proposal.block)
    for code in skeleton.ballots:
        if len(code) != HASH_SIZE:
            raise BadEncoding(f"compact proposal: a ballot named by {len(code)} bytes, not a {HASH_SIZE}-byte code")
        raw = ballot_by_code(code)
        if raw is None:
            missing.append(code)
            continue
        total += len(raw)
        if total > MAX_BLOCK_BYTES:
            raise BadEncoding(f"compact proposal: its ballots exceed the block limit of {MAX_BLOCK_BYTES} bytes")
        ballots.append(raw)
    height, round_ = skeleton_proposal.height, skeleton_proposal.round
    if missing:
        return Rebuilt(height, round_, None, tuple(missing))
    block = Block(skeleton.header, tuple(ballots), skeleton.transactions, skeleton.last_commit)
    return Rebuilt(height, round_, replace(skeleton_proposal, block=block.encode()))


def encode_proposal_request(height: int, round_: int) -> bytes:
    """PROPOSAL_REQUEST payload: the (height, round) whose whole proposal is wanted."""
    return codec.encode([codec.int_bytes(height), codec.int_bytes(round_)])


def decode_proposal_request(payload: bytes) -> tuple[int, int]:
    f = codec.as_list(codec.decode(payload, max_size=MAX_REQUEST_BYTES), 2, "proposal request")
    return codec.as_int(f[0], "proposal request height"), codec.as_int(f[1], "proposal request round")


class SentProposals:
    """A proposer's own latest proposals, whole, for the peers that could not rebuild
    them. Each peer gets each proposal at most once: answering costs a whole block's
    bytes, so a peer that asks again and again gets nothing more for it."""

    KEPT = 4  # proposals of the latest rounds; older ones are decided or abandoned

    def __init__(self) -> None:
        self._kept: dict[tuple[int, int], tuple[bytes, set[bytes]]] = {}

    def keep(self, height: int, round_: int, message: bytes) -> None:
        """``message``: the proposal's CONSENSUS frame payload."""
        kept = {k: v for k, v in self._kept.items() if k[0] >= height}
        kept[(height, round_)] = (message, set())
        self._kept = dict(sorted(kept.items())[-self.KEPT:])

    def answer(self, peer: bytes, height: int, round_: int) -> bytes | None:
        """The payload to send ``peer`` for its request, or None (unknown or already sent)."""
        entry = self._kept.get((height, round_))
        if entry is None or peer in entry[1]:
            return None
        entry[1].add(peer)
        return entry[0]
