"""Encrypted ballots for the page's proof checks (web/src/ballot.js), made by ledger/
itself: valid ones of several shapes, and ones a lying voter's device or a colluding
server would send (a changed ciphertext, proofs for another election, chain, key or
credential, a selection encrypting 2, a contest over its limit) and ones that are not
canonical (off-curve and non-canonical points, the identity, scalars not reduced modulo
the group order, a wrong shape, trailing bytes). Each carries what ``ledger`` says of it:
None, or the refusal's code and place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ledger import codec
from ledger.ballot import BallotEnvelope, CredentialProof
from ledger.crypto import SigningKey
from ledger.encrypted_ballot import BallotContext, ContestShape, encrypt_ballot, verify_payload
from ledger.errors import LedgerError
from ledger.group import ORDER, base_mul
from tests.crypto.helpers import forge_ballot

CHAIN = "web-chain"
ELECTION = "secret-2026"
SECRET = 0x5EC2E7
FIELD_PRIME = 2**256 - 2**32 - 977
Shape = tuple[tuple[int, int], ...]
SHAPE: Shape = ((3, 1), (2, 1))  # the localnet's encrypted election: chair of three, yes/no
WIDE: Shape = ((4, 2), (1, 1), (5, 3))


def _point(k: int) -> bytes:
    p = base_mul(k)
    assert p is not None
    return p.encode()


def _context(shape: Shape, voter: SigningKey, *, chain: str = CHAIN, election: str = ELECTION,
             secret: int = SECRET) -> BallotContext:
    return BallotContext(chain, election, _point(secret), voter.public_key,
                         tuple(ContestShape(c, limit) for c, limit in shape))


def _envelope(voter: SigningKey, payload: bytes) -> str:
    env = BallotEnvelope.create(voter, chain_id=CHAIN, election_id=ELECTION, proof=CredentialProof.of(0, []),
                                payload=payload)
    return env.encode().hex()


def _verdict(shape: Shape, raw_hex: str) -> dict[str, Any] | None:
    envelope = BallotEnvelope.decode(bytes.fromhex(raw_hex))
    try:
        context = BallotContext(CHAIN, ELECTION, _point(SECRET), envelope.credential,
                                tuple(ContestShape(c, limit) for c, limit in shape))
        verify_payload(context, envelope.payload)
    except LedgerError as exc:
        return {"code": exc.code, "where": exc.where}
    return None


def _edit(payload: bytes, change: Callable[[list[Any]], None]) -> bytes:
    """The payload's RLP items changed by ``change`` and encoded again."""
    items = codec.decode(payload)
    assert isinstance(items, list)
    change(items)
    return codec.encode(items)


def _set_field(contest: int, selection: int, field: int, value: bytes) -> Callable[[list[Any]], None]:
    def change(items: list[Any]) -> None:
        items[contest][0][selection][field] = value
    return change


def _scalar(k: int) -> bytes:
    return k.to_bytes(32, "big")


def _off_curve_x() -> bytes:
    """An x with no y on secp256k1 (x^3 + 7 not a square mod p)."""
    x = 5
    while pow(x**3 + 7, (FIELD_PRIME - 1) // 2, FIELD_PRIME) == 1:
        x += 1
    return b"\x02" + x.to_bytes(32, "big")


def _x_beyond_p() -> bytes:
    """x >= p whose residue mod p is on the curve: refused as non-canonical all the same."""
    x = 1
    while pow((x**3 + 7) % FIELD_PRIME, (FIELD_PRIME - 1) // 2, FIELD_PRIME) != 1:
        x += 1
    return b"\x02" + (x + FIELD_PRIME).to_bytes(32, "big")


def ballot_vectors() -> list[dict[str, Any]]:
    cases: list[tuple[str, Shape, str]] = []
    voter = SigningKey.from_seed(b"web voter")
    other = SigningKey.from_seed(b"another voter")

    def honest(shape: Shape, selections: Sequence[Sequence[int]], **where: Any) -> bytes:
        ballot, _ = encrypt_ballot(_context(shape, voter, **where), selections)
        return ballot.encode()

    good = honest(SHAPE, [[0, 1, 0], [1, 0]])
    cases += [
        ("valid", SHAPE, _envelope(voter, good)),
        ("valid_blank", SHAPE, _envelope(voter, honest(SHAPE, [[0, 0, 0], [0, 0]]))),
        ("valid_wide", WIDE, _envelope(voter, honest(WIDE, [[1, 0, 1, 0], [1], [0, 1, 1, 1, 0]]))),
        ("valid_wide_blank", WIDE, _envelope(voter, honest(WIDE, [[0, 0, 0, 0], [0], [0, 0, 0, 0, 0]]))),
        ("changed_ciphertext", SHAPE, _envelope(voter, _edit(good, _set_field(0, 1, 0, _point(424242))))),
        ("changed_response", SHAPE, _envelope(voter, _edit(good, _set_field(1, 0, 5, _scalar(7))))),
        ("proof_for_another_election", SHAPE, _envelope(voter, honest(SHAPE, [[1, 0, 0], [0, 1]],
                                                                      election="other-2026"))),
        ("proof_for_another_chain", SHAPE, _envelope(voter, honest(SHAPE, [[1, 0, 0], [0, 1]], chain="other-chain"))),
        ("proof_under_another_key", SHAPE, _envelope(voter, honest(SHAPE, [[1, 0, 0], [0, 1]], secret=SECRET + 1))),
        ("proof_for_another_credential", SHAPE, _envelope(other, good)),
        ("encrypts_two", SHAPE, _envelope(voter, forge_ballot(_context(SHAPE, voter), [[0, 2, 0], [1, 0]],
                                                              [[0, 1, 0], [1, 0]]).encode())),
        ("over_the_limit", SHAPE, _envelope(voter, forge_ballot(_context(SHAPE, voter), [[1, 1, 0], [1, 0]],
                                                                [[1, 1, 0], [1, 0]], [1, 1]).encode())),
        ("off_curve_point", SHAPE, _envelope(voter, _edit(good, _set_field(0, 2, 1, _off_curve_x())))),
        ("x_not_below_p", SHAPE, _envelope(voter, _edit(good, _set_field(0, 0, 0, _x_beyond_p())))),
        ("uncompressed_prefix", SHAPE, _envelope(voter, _edit(good, _set_field(0, 0, 0, b"\x04" + _point(9)[1:])))),
        ("identity_as_zeros", SHAPE, _envelope(voter, _edit(good, _set_field(1, 1, 1, bytes(33))))),
        ("identity_as_empty", SHAPE, _envelope(voter, _edit(good, _set_field(1, 1, 0, b"")))),
        ("scalar_equal_to_order", SHAPE, _envelope(voter, _edit(good, _set_field(0, 1, 3, _scalar(ORDER))))),
        ("scalar_above_order", SHAPE, _envelope(voter, _edit(good, _set_field(1, 0, 4, _scalar(2**256 - 1))))),
        ("short_scalar", SHAPE, _envelope(voter, _edit(good, _set_field(0, 0, 2, b"\x01" * 31)))),
        ("missing_selection", SHAPE, _envelope(voter, _edit(good, lambda items: items[0][0].pop()))),
        ("missing_contest", SHAPE, _envelope(voter, _edit(good, lambda items: items.pop()))),
        ("contest_proof_short", SHAPE, _envelope(voter, _edit(good, lambda items: items[1].__setitem__(
            1, items[1][1][:1] + items[1][1][2:3])))),
        ("odd_proof", SHAPE, _envelope(voter, _edit(good, lambda items: items[1][1].pop()))),
        ("selection_as_bytes", SHAPE, _envelope(voter, _edit(good, lambda items: items[0][0].__setitem__(0, b"x")))),
        ("trailing_bytes", SHAPE, _envelope(voter, good + b"\x00")),
        ("oversized", SHAPE, _envelope(voter, good + bytes(2000))),
        ("not_a_list", SHAPE, _envelope(voter, b"\x01")),
    ]
    return [{"name": name, "contests": [{"choices": c, "limit": limit} for c, limit in shape],
             "chain_id": CHAIN, "election_id": ELECTION, "joint_key": _point(SECRET).hex(), "ballot": raw,
             "refused": _verdict(shape, raw)} for name, shape, raw in cases]
