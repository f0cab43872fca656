"""The ``elgamal-secp256k1/v1`` ballot payload: encrypted selections with their proofs.

An election's shape is a tuple of contests, each with a number of choices and a
selection limit L. A payload holds, per contest, one ciphertext per choice, each with a
range proof that it encrypts 0 or 1, and one range proof that the product of the
contest's ciphertexts encrypts a value in [0, L] (the number of choices selected).

Encoding (canonical RLP, ``ledger.codec``; scalars 32 big-endian bytes, points 33-byte
compressed)::

    payload   = [contest, ...]                       one per contest of the shape
    contest   = [[selection, ...], [c_0..c_L, v_0..v_L]]   the contest-sum proof
    selection = [alpha, beta, c_0, c_1, v_0, v_1]

Fiat-Shamir: every challenge hashes ``ballot_statement`` (tag ``.../ballot``: the chain
id, election id, joint key K, credential, the shape and every ciphertext of the ballot),
then the position, then the ciphertext proven; selection proofs and contest proofs have
their own domain tags. A proof therefore verifies only for this ballot, cast by this
credential, in this election on this chain under this key.

A Benaloh audit ``BallotOpening`` holds the choices and nonces: anyone can check it
against the payload with ``check_opening``. An opened ballot must never be cast.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ledger import codec
from ledger.elgamal import Blinder, Ciphertext, ElectionKey, EncryptedSum, encrypt
from ledger.errors import BadBallotProof, BadBallotShape, BadEncoding, BadOpening, BadScalar
from ledger.group import GENERATOR, ORDER, POINT_SIZE, Point, Rng, add, base_mul, decode_scalar, random_scalar
from ledger.hashing import keccak256, tag
from ledger.sigma import RangeProof, prove_range, verify_range

SCHEME = "elgamal-secp256k1/v1"
MAX_CONTESTS = 64
MAX_CHOICES = 64  # per contest
BALLOT_DOMAIN = tag(f"{SCHEME}/ballot")
SELECTION_DOMAIN = tag(f"{SCHEME}/selection-proof")
CONTEST_DOMAIN = tag(f"{SCHEME}/contest-proof")


@dataclass(frozen=True)
class ContestShape:
    """A contest: how many choices, and at most how many may be selected (1 <= L)."""

    choices: int
    limit: int

    def __post_init__(self) -> None:
        if not 1 <= self.choices <= MAX_CHOICES or not 1 <= self.limit <= self.choices:
            raise BadBallotShape(f"contest with {self.choices} choices and limit {self.limit}")


@dataclass(frozen=True)
class BallotContext:
    """What every proof of one ballot is bound to."""

    chain_id: str
    election_id: str
    joint_key: bytes  # K, 33-byte compressed
    credential: bytes  # the voter's credential public key, 33-byte compressed
    contests: tuple[ContestShape, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.contests) <= MAX_CONTESTS:
            raise BadBallotShape(f"{len(self.contests)} contests (1 to {MAX_CONTESTS} allowed)")
        if len(self.credential) != POINT_SIZE:
            raise BadEncoding("credential: expected a 33-byte compressed public key")

    @property
    def key(self) -> ElectionKey:
        return _election_key(self.joint_key)

    def max_payload_size(self) -> int:
        return _max_payload_size(self.contests)


@lru_cache(maxsize=64)
def _election_key(raw: bytes) -> ElectionKey:
    return ElectionKey.decode(raw)


@lru_cache(maxsize=64)
def _max_payload_size(contests: tuple[ContestShape, ...]) -> int:
    # Generous per-item bounds (each header at most 3 bytes): refused before parsing.
    selection = 3 + 2 * 34 + 4 * 33
    return 3 + sum(3 + 3 + c.choices * selection + 3 + 2 * (c.limit + 1) * 33 for c in contests)


# --- wire objects ----------------------------------------------------------------------
@dataclass(frozen=True)
class EncryptedSelection:
    ciphertext: Ciphertext
    proof: RangeProof  # encrypts 0 or 1


@dataclass(frozen=True)
class EncryptedContest:
    selections: tuple[EncryptedSelection, ...]
    proof: RangeProof  # the product encrypts 0..limit

    def total(self) -> EncryptedSum:
        return EncryptedSum.of([s.ciphertext for s in self.selections])


def _scalar_items(proof: RangeProof) -> list[codec.Item]:
    return [k.to_bytes(32, "big") for k in (*proof.challenges, *proof.responses)]


def _read_proof(items: list[codec.Item], what: str) -> RangeProof:
    if not items or len(items) % 2:
        raise BadEncoding(f"{what}: expected challenges and responses in equal numbers")
    values = [decode_scalar(codec.as_bytes(x, what), what) for x in items]
    half = len(values) // 2
    return RangeProof(tuple(values[:half]), tuple(values[half:]))


@dataclass(frozen=True)
class EncryptedBallot:
    """An ``elgamal-secp256k1/v1`` payload (decoded; not yet checked)."""

    contests: tuple[EncryptedContest, ...]

    def encode(self) -> bytes:
        return codec.encode(
            [
                [
                    [[s.ciphertext.alpha.encode(), s.ciphertext.beta.encode(), *_scalar_items(s.proof)]
                     for s in contest.selections],
                    _scalar_items(contest.proof),
                ]
                for contest in self.contests
            ]
        )

    @classmethod
    def decode(cls, raw: bytes, *, max_size: int) -> EncryptedBallot:
        """Parse a payload; refuses trailing bytes, malformed items, non-canonical
        scalars and bad points. Its shape is checked by ``verify_payload``."""
        items = codec.as_list(codec.decode(raw, max_size=max_size), None, "payload")
        if not 1 <= len(items) <= MAX_CONTESTS:
            raise BadBallotShape(f"payload with {len(items)} contests")
        contests = []
        for ci, contest_item in enumerate(items):
            where = f"contest {ci}"
            sel_items, proof_items = codec.as_list(contest_item, 2, where)
            selections = []
            for si, sel_item in enumerate(codec.as_list(sel_items, None, where)):
                swhere = f"{where} selection {si}"
                fields = codec.as_list(sel_item, 6, swhere)
                alpha = Point.decode(codec.as_bytes(fields[0], swhere), f"{swhere} alpha")
                beta = Point.decode(codec.as_bytes(fields[1], swhere), f"{swhere} beta")
                selections.append(EncryptedSelection(Ciphertext(alpha, beta), _read_proof(fields[2:], swhere)))
            proof = _read_proof(codec.as_list(proof_items, None, where), f"{where} proof")
            contests.append(EncryptedContest(tuple(selections), proof))
        return cls(tuple(contests))

    def ciphertexts(self) -> list[Ciphertext]:
        """Every ciphertext in order: contest by contest, choice by choice."""
        return [s.ciphertext for contest in self.contests for s in contest.selections]


@dataclass(frozen=True)
class CheckedBallot:
    """A payload whose shape and every proof have been verified (``verify_payload``)."""

    ballot: EncryptedBallot
    statement: bytes  # the ballot's Fiat-Shamir statement (binds context and ciphertexts)


# --- Fiat-Shamir statements ------------------------------------------------------------
def ballot_statement(context: BallotContext, ciphertexts: Sequence[Ciphertext]) -> bytes:
    """keccak256 of the ballot's whole context: what every proof of it is bound to."""
    body = codec.encode(
        [
            context.chain_id.encode(),
            context.election_id.encode(),
            context.joint_key,
            context.credential,
            [[codec.int_bytes(c.choices), codec.int_bytes(c.limit)] for c in context.contests],
            b"".join([ct.encode() for ct in ciphertexts]),
        ]
    )
    return keccak256(BALLOT_DOMAIN + body)


def _selection_statement(ballot: bytes, contest: int, selection: int, ciphertext: Ciphertext) -> bytes:
    return ballot + contest.to_bytes(2, "big") + selection.to_bytes(2, "big") + ciphertext.encode()


def _contest_statement(ballot: bytes, contest: int, total: EncryptedSum) -> bytes:
    alpha = b"" if total.alpha is None else total.alpha.encode()
    beta = b"" if total.beta is None else total.beta.encode()
    return ballot + contest.to_bytes(2, "big") + bytes([len(alpha)]) + alpha + bytes([len(beta)]) + beta


# --- Benaloh audit openings ------------------------------------------------------------
@dataclass(frozen=True)
class BallotOpening:
    """The choices and nonces behind a payload: reveals the vote, so never cast a ballot
    that has been opened. Encoded as [[[choice, nonce], ...] per contest]."""

    choices: tuple[tuple[int, ...], ...]
    nonces: tuple[tuple[int, ...], ...]

    def __repr__(self) -> str:  # keep choices out of logs and tracebacks
        return "BallotOpening(<secret>)"

    def encode(self) -> bytes:
        return codec.encode(
            [
                [[codec.int_bytes(m), r.to_bytes(32, "big")] for m, r in zip(ms, rs, strict=True)]
                for ms, rs in zip(self.choices, self.nonces, strict=True)
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> BallotOpening:
        items = codec.as_list(codec.decode(raw, max_size=MAX_CONTESTS * MAX_CHOICES * 40 + 400), None, "opening")
        choices, nonces = [], []
        for ci, contest in enumerate(items):
            ms, rs = [], []
            for si, pair in enumerate(codec.as_list(contest, None, f"opening contest {ci}")):
                what = f"opening contest {ci} selection {si}"
                m_item, r_item = codec.as_list(pair, 2, what)
                ms.append(codec.as_int(m_item, what))
                rs.append(decode_scalar(codec.as_bytes(r_item, what), what))
            choices.append(tuple(ms))
            nonces.append(tuple(rs))
        return cls(tuple(choices), tuple(nonces))


# --- encrypting (on the voter's device) ------------------------------------------------
def encrypt_ballot(
    context: BallotContext, selections: Sequence[Sequence[int]], rng: Rng = random_scalar
) -> tuple[EncryptedBallot, BallotOpening]:
    """Encrypt one 0/1 selection per choice of every contest, with all proofs.

    ``selections[i][j]`` is 1 if choice j of contest i is selected. Returns the payload
    and its opening (keep the opening only for an audit; discard it before casting)."""
    _check_selections(context, selections)
    key = context.key
    blinder = Blinder(rng)
    nonces = [[rng() for _ in contest] for contest in selections]
    cts = [
        [encrypt(key, m, r, blinder) for m, r in zip(ms, rs, strict=True)]
        for ms, rs in zip(selections, nonces, strict=True)
    ]
    statement = ballot_statement(context, [ct for row in cts for ct in row])
    contests = []
    for ci, (ms, rs, row) in enumerate(zip(selections, nonces, cts, strict=True)):
        encrypted = tuple(
            EncryptedSelection(
                ct,
                prove_range(key, ct, m, r, 1, SELECTION_DOMAIN, _selection_statement(statement, ci, si, ct),
                            blinder, rng),
            )
            for si, (m, r, ct) in enumerate(zip(ms, rs, row, strict=True))
        )
        total = EncryptedSum.of(row)
        proof = prove_range(key, total, sum(ms), sum(rs) % ORDER, context.contests[ci].limit, CONTEST_DOMAIN,
                            _contest_statement(statement, ci, total), blinder, rng)
        contests.append(EncryptedContest(encrypted, proof))
    opening = BallotOpening(tuple(tuple(ms) for ms in selections), tuple(tuple(rs) for rs in nonces))
    return EncryptedBallot(tuple(contests)), opening


def _check_selections(context: BallotContext, selections: Sequence[Sequence[int]]) -> None:
    if len(selections) != len(context.contests):
        raise ValueError(f"{len(selections)} contests selected, the election has {len(context.contests)}")
    for ci, (ms, shape) in enumerate(zip(selections, context.contests, strict=True)):
        if len(ms) != shape.choices or any(m not in (0, 1) for m in ms):
            raise ValueError(f"contest {ci}: expected {shape.choices} selections of 0 or 1")
        if sum(ms) > shape.limit:
            raise ValueError(f"contest {ci}: {sum(ms)} selections exceed the limit of {shape.limit}")


# --- checking (gateway, validators, verifier: one implementation) ----------------------
def check_shape(context: BallotContext, ballot: EncryptedBallot) -> None:
    if len(ballot.contests) != len(context.contests):
        raise BadBallotShape(f"{len(ballot.contests)} contests, the election has {len(context.contests)}")
    for ci, (contest, shape) in enumerate(zip(ballot.contests, context.contests, strict=True)):
        if len(contest.selections) != shape.choices:
            raise BadBallotShape(f"{len(contest.selections)} selections, the contest has {shape.choices}",
                                 where=f"contest {ci}")
        for si, selection in enumerate(contest.selections):
            if len(selection.proof.challenges) != 2:
                raise BadBallotShape("a selection proof has two branches", where=f"contest {ci} selection {si}")
        if len(contest.proof.challenges) != shape.limit + 1:
            raise BadBallotShape(f"the contest proof needs {shape.limit + 1} branches", where=f"contest {ci}")


def verify_ballot(context: BallotContext, ballot: EncryptedBallot) -> CheckedBallot:
    """Check a decoded ballot's shape and every proof; raises ``BadBallotShape`` or
    ``BadBallotProof`` naming the first contest and selection that fails."""
    check_shape(context, ballot)
    table = context.key.table
    statement = ballot_statement(context, ballot.ciphertexts())
    for ci, contest in enumerate(ballot.contests):
        for si, selection in enumerate(contest.selections):
            ct = selection.ciphertext
            if not verify_range(table, ct, selection.proof, 1, SELECTION_DOMAIN,
                                _selection_statement(statement, ci, si, ct)):
                raise BadBallotProof("the proof that the selection encrypts 0 or 1 does not verify",
                                     where=f"contest {ci} selection {si}")
        total = contest.total()
        limit = context.contests[ci].limit
        if not verify_range(table, total, contest.proof, limit, CONTEST_DOMAIN,
                            _contest_statement(statement, ci, total)):
            raise BadBallotProof(f"the proof that at most {limit} choices are selected does not verify",
                                 where=f"contest {ci}")
    return CheckedBallot(ballot, statement)


def verify_payload(context: BallotContext, raw: bytes) -> CheckedBallot:
    """Decode a payload (bounded by the shape's size first) and check every proof."""
    ballot = _layout(context.contests).read(raw)
    if ballot is None:  # not this shape's canonical layout: the generic decoder decides
        ballot = EncryptedBallot.decode(raw, max_size=context.max_payload_size())
    return verify_ballot(context, ballot)


class _Layout:
    """The fast twin of ``EncryptedBallot.decode`` for one shape.

    Every field has a fixed size, so a canonical payload of a given shape is the
    template's bytes with only the fields' contents changed. ``read`` checks the bytes
    between fields against the template (one C-level slicing of all of them) and reads
    the fields from their offsets; the generic decoder would produce the same ballot
    (``tests/crypto/test_ballot.py`` holds the two together). Anything else is None."""

    def __init__(self, contests: tuple[ContestShape, ...]) -> None:
        self.contests = contests
        selection = EncryptedSelection(Ciphertext(GENERATOR, GENERATOR), RangeProof((0, 0), (0, 0)))
        template = EncryptedBallot(
            tuple(
                EncryptedContest((selection,) * c.choices, RangeProof((0,) * (c.limit + 1), (0,) * (c.limit + 1)))
                for c in contests
            )
        ).encode()
        fields: list[tuple[int, int]] = []
        self._walk(template, 0, len(template), fields)
        gaps, pos = [], 0
        for start, stop in fields:
            gaps.append(slice(pos, start))
            pos = stop
        gaps.append(slice(pos, len(template)))
        self.size = len(template)
        self._gaps = operator.itemgetter(*gaps)
        self._skeleton = self._gaps(template)
        self._fields = operator.itemgetter(*(slice(a, b) for a, b in fields))

    @staticmethod
    def _walk(data: bytes, start: int, stop: int, out: list[tuple[int, int]]) -> None:
        pos = start
        while pos < stop:
            is_list, a, b = codec.read_header(data, pos, stop)
            if is_list:
                _Layout._walk(data, a, b, out)
            else:
                out.append((a, b))
            pos = b

    def read(self, raw: bytes) -> EncryptedBallot | None:
        if len(raw) != self.size or self._gaps(raw) != self._skeleton:
            return None
        fields = self._fields(raw)
        from_bytes = int.from_bytes
        pos = 0
        contests = []
        for ci, shape in enumerate(self.contests):
            selections = []
            for si in range(shape.choices):
                alpha_raw, beta_raw, *scalar_raw = fields[pos : pos + 6]
                pos += 6
                where = f"contest {ci} selection {si}"
                ct = Ciphertext(Point.decode(alpha_raw, f"{where} alpha"), Point.decode(beta_raw, f"{where} beta"))
                c0, c1, v0, v1 = scalars = [from_bytes(x, "big") for x in scalar_raw]
                if max(scalars) >= ORDER:
                    raise BadScalar(f"{where}: not reduced modulo the group order")
                selections.append(EncryptedSelection(ct, RangeProof((c0, c1), (v0, v1))))
            branches = shape.limit + 1
            values = [from_bytes(x, "big") for x in fields[pos : pos + 2 * branches]]
            pos += 2 * branches
            if max(values) >= ORDER:
                raise BadScalar(f"contest {ci} proof: not reduced modulo the group order")
            contests.append(
                EncryptedContest(tuple(selections), RangeProof(tuple(values[:branches]), tuple(values[branches:])))
            )
        return EncryptedBallot(tuple(contests))


@lru_cache(maxsize=64)
def _layout(contests: tuple[ContestShape, ...]) -> _Layout:
    return _Layout(contests)


def check_opening(context: BallotContext, ballot: EncryptedBallot, opening: BallotOpening) -> None:
    """Check a Benaloh audit: each ciphertext is (g^r, g^m K^r) for the opened m and r,
    each m is 0 or 1 within the contest's limit, and the ballot's proofs verify."""
    verify_ballot(context, ballot)
    key = context.key
    if len(opening.choices) != len(ballot.contests) or len(opening.nonces) != len(ballot.contests):
        raise BadOpening("the opening does not have the ballot's contests")
    for ci, (contest, ms, rs) in enumerate(zip(ballot.contests, opening.choices, opening.nonces, strict=True)):
        if len(ms) != len(contest.selections) or len(rs) != len(contest.selections):
            raise BadOpening("the opening does not have the contest's selections", where=f"contest {ci}")
        if sum(ms) > context.contests[ci].limit:
            raise BadOpening("the opened choices exceed the limit", where=f"contest {ci}")
        for si, (selection, m, r) in enumerate(zip(contest.selections, ms, rs, strict=True)):
            where = f"contest {ci} selection {si}"
            if m not in (0, 1):
                raise BadOpening("an opened selection is neither 0 nor 1", where=where)
            ct = selection.ciphertext
            if ct.alpha != base_mul(r) or ct.beta != add((base_mul(m), key.point.mul(r))):
                raise BadOpening("the ciphertext is not the encryption the opening claims", where=where)


# --- reading a checked payload's ciphertexts without decoding it again -----------------
@lru_cache(maxsize=64)
def ciphertext_offsets(contests: tuple[ContestShape, ...]) -> tuple[int, tuple[int, ...]]:
    """(payload size, offsets of every alpha and beta) for this shape. Every field of the
    encoding has a fixed size (points 33 bytes, scalars 32), so a canonical payload of a
    given shape has its ciphertexts at fixed offsets; the tally reads them from there."""
    point = GENERATOR.encode()  # never equal to a scalar field's bytes (those are zero here)
    selection = EncryptedSelection(Ciphertext(GENERATOR, GENERATOR), RangeProof((0, 0), (0, 0)))
    template = EncryptedBallot(
        tuple(
            EncryptedContest(
                (selection,) * c.choices,
                RangeProof((0,) * (c.limit + 1), (0,) * (c.limit + 1)),
            )
            for c in contests
        )
    ).encode()
    offsets = []
    pos = 0
    while True:
        pos = template.find(b"\xa1" + point, pos)
        if pos < 0:
            break
        offsets.append(pos + 1)
        pos += 34
    return len(template), tuple(offsets)


def encoded_ciphertexts(context: BallotContext, raw: bytes) -> list[bytes]:
    """alpha_0, beta_0, alpha_1, ... (33 bytes each) of a payload that ``verify_payload``
    has accepted for this context (anything else is refused by its size or, when
    parsed, by the point decoder)."""
    size, offsets = ciphertext_offsets(context.contests)
    if len(raw) != size:
        raise BadBallotShape(f"a {len(raw)}-byte payload for a shape whose payloads are {size} bytes")
    return [raw[o : o + POINT_SIZE] for o in offsets]
