"""An encrypted election's homomorphic sums over its counted ballots, in one canonical form.

Trustees decrypt these sums and a published result is checked against them, so every
observer who replays the chain must get them byte for byte (``EncryptedTally``)::

    tally = [format, chain id, election id, ballots, [[alpha, beta], ...]]

one pair per choice, contest by contest and choice by choice; a point is 33 bytes
compressed, or empty for the identity (hostile ballots can cancel); ``ballots`` is how
many ballots were summed. The sums bind neither a height nor a tip: after the close,
every replay of the chain ends with the same counted ballots and so the same bytes.

Summing reads each counted payload's ciphertexts at their fixed offsets
(``encrypted_ballot.ciphertext_offsets``: the payload passed ``verify_payload`` when its
block was applied, and a checked payload of a shape has exactly one layout) and adds
them with ``tally_crypto.CiphertextAccumulator``. The work splits: ``pack_points`` cuts
the payloads into chunks of packed points, ``sum_packed`` sums one chunk (in any
process), and ``EncryptedTally.plus`` adds partial sums.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ledger import codec, jsonbound
from ledger.elgamal import EncryptedSum
from ledger.encrypted_ballot import ContestShape, ciphertext_offsets
from ledger.errors import BadBallotShape, BadEncoding, BadGenesis
from ledger.genesis import MAX_CHOICES, MAX_GENESIS_INT, ElectionDef, check_identifier
from ledger.group import POINT_SIZE, decode_optional, encode_optional
from ledger.tally_crypto import CiphertextAccumulator

SUMS_FORMAT = b"ballot-ledger/encrypted-sums/v1"
_MAX_ID_BYTES = 64
# format, two identifiers, a count, and per choice a pair of points (each with its header)
MAX_SUMS_BYTES = 16 + len(SUMS_FORMAT) + 2 * (_MAX_ID_BYTES + 2) + 9 + MAX_CHOICES * (1 + 2 * (1 + POINT_SIZE))
PACK_BALLOTS = 4096  # ballots per chunk of packed points


def contest_shapes(election: ElectionDef) -> tuple[ContestShape, ...]:
    """The ballot shape of an encrypted election's contests."""
    return tuple(ContestShape(len(c.choices), c.limit) for c in election.contests)


@dataclass(frozen=True)
class EncryptedTally:
    """The sums per choice of an election's counted ballots, and how many were summed."""

    chain_id: str
    election_id: str
    ballots: int
    sums: tuple[EncryptedSum, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.sums) <= MAX_CHOICES:
            raise ValueError(f"{len(self.sums)} sums (1 to {MAX_CHOICES} choices)")
        if not 0 <= self.ballots <= MAX_GENESIS_INT:
            raise ValueError("ballots summed out of range")

    def encode(self) -> bytes:
        return codec.encode([
            SUMS_FORMAT,
            self.chain_id.encode(),
            self.election_id.encode(),
            codec.int_bytes(self.ballots),
            [[encode_optional(s.alpha), encode_optional(s.beta)] for s in self.sums],
        ])

    @classmethod
    def decode(cls, raw: bytes) -> EncryptedTally:
        """Refuses an oversized input, trailing bytes, another format, malformed
        identifiers, a non-canonical count and any point not on the curve."""
        fmt, chain, election, ballots, pairs = codec.as_list(
            codec.decode(raw, max_size=MAX_SUMS_BYTES), 5, "encrypted sums")
        if codec.as_bytes(fmt, "encrypted sums format") != SUMS_FORMAT:
            raise BadEncoding("encrypted sums: not the ballot-ledger/encrypted-sums/v1 format")
        chain_id = _identifier(chain, "chain id")
        election_id = _identifier(election, "election id")
        count = codec.as_int(ballots, "ballots summed")
        if count > MAX_GENESIS_INT:
            raise BadEncoding("encrypted sums: more ballots summed than any chain records")
        items = codec.as_list(pairs, None, "encrypted sums")
        if not 1 <= len(items) <= MAX_CHOICES:
            raise BadEncoding(f"encrypted sums: {len(items)} choices (1 to {MAX_CHOICES})")
        sums = []
        for c, item in enumerate(items):
            what = f"encrypted sum of choice {c}"
            alpha, beta = (codec.as_bytes(x, what) for x in codec.as_list(item, 2, what))
            sums.append(EncryptedSum(decode_optional(alpha, f"{what} alpha"), decode_optional(beta, f"{what} beta")))
        return cls(chain_id, election_id, count, tuple(sums))

    def sha256(self) -> str:
        """The digest observers compare (hex of SHA-256 over the canonical encoding)."""
        return hashlib.sha256(self.encode()).hexdigest()

    def plus(self, other: EncryptedTally) -> EncryptedTally:
        """The sums of two disjoint sets of ballots of the same election."""
        if (self.chain_id, self.election_id, len(self.sums)) != (other.chain_id, other.election_id, len(other.sums)):
            raise ValueError("partial sums of different elections")
        return EncryptedTally(self.chain_id, self.election_id, self.ballots + other.ballots,
                              tuple(a.plus(b) for a, b in zip(self.sums, other.sums, strict=True)))

    @classmethod
    def empty(cls, chain_id: str, election: ElectionDef) -> EncryptedTally:
        """No ballot summed yet: every sum the identity."""
        choices = sum(len(c.choices) for c in election.contests)
        return cls(chain_id, election.election_id, 0, (EncryptedSum(None, None),) * choices)


# --- the sums file (``ballotledger tally sums``), what a trustee decrypts -----------------
SUMS_FILE_FORMAT = "ballot-ledger/encrypted-sums-file/v1"
MAX_SUMS_FILE_BYTES = 4 * MAX_SUMS_BYTES + 4096  # the encoding in hex, and a few short fields
_SUMS_FILE_KEYS = {"format", "genesis_hash", "chain_id", "election_id", "tip_height", "voting_closed",
                   "ballots_summed", "sums", "sums_sha256"}


def sums_file_obj(
    total: EncryptedTally, *, genesis_hash: bytes, tip_height: int, voting_closed: bool
) -> dict[str, Any]:
    """The sums as JSON: their canonical encoding in hex with its digest, and where they
    were computed (the chain's genesis hash, the tip replayed to, whether voting had
    closed there: sums of an election still open are not final)."""
    return {
        "format": SUMS_FILE_FORMAT,
        "genesis_hash": genesis_hash.hex(),
        "chain_id": total.chain_id,
        "election_id": total.election_id,
        "tip_height": tip_height,
        "voting_closed": voting_closed,
        "ballots_summed": total.ballots,
        "sums": total.encode().hex(),
        "sums_sha256": total.sha256(),
    }


def read_sums_file(raw: bytes) -> tuple[EncryptedTally, dict[str, Any]]:
    """The sums a :func:`sums_file_obj` document holds, and the document; refuses one
    whose fields disagree with the encoding they describe."""
    obj = jsonbound.loads(raw, max_bytes=MAX_SUMS_FILE_BYTES, max_depth=1, what="sums file")
    if not isinstance(obj, dict) or set(obj) != _SUMS_FILE_KEYS or obj["format"] != SUMS_FILE_FORMAT:
        raise BadEncoding(f"not a {SUMS_FILE_FORMAT} document")
    encoded = obj["sums"]
    if not isinstance(encoded, str) or len(encoded) > 2 * MAX_SUMS_BYTES:
        raise BadEncoding("sums file: the sums are not a hex string")
    try:
        total = EncryptedTally.decode(bytes.fromhex(encoded))
    except ValueError:
        raise BadEncoding("sums file: the sums are not a hex string") from None
    genesis_hash, height, closed = obj["genesis_hash"], obj["tip_height"], obj["voting_closed"]
    if not (isinstance(genesis_hash, str) and len(genesis_hash) == 64 and genesis_hash == genesis_hash.lower()
            and all(ch in "0123456789abcdef" for ch in genesis_hash)):
        raise BadEncoding("sums file: genesis_hash is not 32 bytes in lowercase hex")
    counts_ok = type(height) is int and type(obj["ballots_summed"]) is int and 0 <= height <= MAX_GENESIS_INT
    if not counts_ok or type(closed) is not bool:
        raise BadEncoding("sums file: tip_height and ballots_summed must be counts, voting_closed a boolean")
    described = (obj["chain_id"], obj["election_id"], obj["ballots_summed"], obj["sums_sha256"], obj["sums"])
    if described != (total.chain_id, total.election_id, total.ballots, total.sha256(), total.encode().hex()):
        raise BadEncoding("sums file: its fields disagree with the sums it carries")
    return total, obj


def _identifier(item: codec.Item, what: str) -> str:
    text = codec.as_text(item, what, max_size=_MAX_ID_BYTES)
    try:
        check_identifier(text, what)
    except BadGenesis as exc:
        raise BadEncoding(f"encrypted sums: {exc.message}") from None
    return text


def _point_spans(shapes: tuple[ContestShape, ...]) -> tuple[int, list[slice]]:
    size, offsets = ciphertext_offsets(shapes)
    return size, [slice(o, o + POINT_SIZE) for o in offsets]


def _wrong_size(raw: bytes, size: int) -> BadBallotShape:
    return BadBallotShape(f"a counted {len(raw)}-byte payload for a shape whose payloads are {size} bytes")


def pack_points(shapes: tuple[ContestShape, ...], payloads: Iterable[bytes],
                per_chunk: int = PACK_BALLOTS) -> Iterator[tuple[int, bytes]]:
    """(ballots, their points back to back) per chunk of up to ``per_chunk`` checked
    payloads: alpha_0, beta_0, alpha_1, ... of each ballot (33 bytes each)."""
    size, spans = _point_spans(shapes)
    chunk: list[bytes] = []
    for raw in payloads:
        if len(raw) != size:
            raise _wrong_size(raw, size)
        chunk.extend([raw[s] for s in spans])
        if len(chunk) == per_chunk * len(spans):
            yield per_chunk, b"".join(chunk)
            chunk = []
    if chunk:
        yield len(chunk) // len(spans), b"".join(chunk)


def sum_packed(chain_id: str, election_id: str, choices: int, packed: bytes) -> EncryptedTally:
    """The sums of one chunk from :func:`pack_points` (a point that does not parse is
    refused with ``BadPoint``)."""
    width = 2 * choices * POINT_SIZE
    if len(packed) % width:
        raise ValueError("packed points are not whole ballots")
    acc = CiphertextAccumulator(choices)
    for start in range(0, len(packed), width):
        acc.add_encoded([packed[p : p + POINT_SIZE] for p in range(start, start + width, POINT_SIZE)])
    return EncryptedTally(chain_id, election_id, acc.ballots, acc.sums())


def sum_counted(chain_id: str, election: ElectionDef, payloads: Iterable[bytes]) -> EncryptedTally:
    """The sums of ``payloads`` (the counted ones, checked) in this process."""
    shapes = contest_shapes(election)
    size, spans = _point_spans(shapes)
    acc = CiphertextAccumulator(sum(s.choices for s in shapes))
    add = acc.add_encoded
    for raw in payloads:
        if len(raw) != size:
            raise _wrong_size(raw, size)
        add([raw[s] for s in spans])
    return EncryptedTally(chain_id, election.election_id, acc.ballots, acc.sums())
