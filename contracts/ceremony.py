"""The trustees' registry calls: what every validator checks before one may enter a block,
and the ceremony as the registry holds it.

The EVM keeps hashes and order (who posted, once, in which phase); what it cannot check
is checked here, with the pure ceremony code of ``ledger.trustees``, on the state the
call runs on:

- ``post_dealing``: the dealing decodes, is the sender's, its commitments' proofs of
  knowledge verify and it carries one share to every other trustee;
- ``post_complaint``: it is the sender's, against a posted dealing, and public data upholds
  it (the revealed share does not decrypt or does not verify), so a false complaint never
  enters a block;
- ``set_joint_key``: the key is the product of the first commitments of the qualified
  dealers (the registry checks that the list is exactly those);
- ``post_decryption_share``: the share decodes, is the sender's and has one entry per
  choice (its proofs need the sums of the counted ballots: the verifier checks them).

A call that fails these raises ``InvalidCeremonyMessage`` (code ``bad_ceremony_message``):
refused at admission, and a block carrying it is invalid. A call the registry itself
refuses (not a trustee, wrong phase, posted twice) is left to revert there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from contracts import REGISTRY_ADDRESS, InvalidTransaction, Phase, choice_count, registry
from ledger.crypto import address_of
from ledger.errors import LedgerError
from ledger.genesis import ElectionDef
from ledger.tally_crypto import DecryptionShare
from ledger.trustees import (
    CeremonyContext,
    Commitments,
    Complaint,
    Dealing,
    check_dealing,
    complaint_upheld,
    joint_key,
)

ZERO = b"\x00" * 32


class InvalidCeremonyMessage(InvalidTransaction):
    code = "bad_ceremony_message"


class RegistryReader(Protocol):
    """Registry views on one state (their raw output), and the bytes kept under a hash."""

    def call(self, data: bytes) -> bytes: ...

    def preimage(self, digest: bytes) -> bytes | None: ...


@dataclass(frozen=True)
class Ceremony:
    """Per trustee (trustee i at i - 1): its dealing, whether an upheld complaint
    disqualified it, and its decryption share; None where nothing was posted."""

    dealings: tuple[Dealing | None, ...]
    disqualified: tuple[bool, ...]
    shares: tuple[DecryptionShare | None, ...]

    def qualified(self) -> list[int]:
        """The dealers that count: a dealing posted, no complaint upheld."""
        return [i for i, (d, out) in enumerate(zip(self.dealings, self.disqualified, strict=True), start=1)
                if d is not None and not out]

    def qualified_commitments(self) -> list[Commitments]:
        return [d.commitments for i in self.qualified() if (d := self.dealings[i - 1]) is not None]

    def joint_key(self) -> bytes:
        """The key the qualified dealings give (``BadCeremonyProof`` if none is)."""
        return joint_key(self.qualified_commitments()).encode()


def ceremony_context(chain_id: str, election: ElectionDef) -> CeremonyContext:
    return CeremonyContext(chain_id, election.election_id, election.trustees, election.threshold)


def election_of(reader: RegistryReader, key: bytes) -> ElectionDef | None:
    """The election's definition on this state (None if it has none)."""
    reg = registry()
    record = reg.decode_election(reader.call(reg.fn("election").encode(key)))
    if record.phase == Phase.NONE:
        return None
    raw = reader.preimage(record.definition_hash)
    return ElectionDef.decode(raw) if raw is not None else None


def read_ceremony(reader: RegistryReader, key: bytes) -> Ceremony:
    reg = registry()
    dealt, disqualified, shares = reg.decode_ceremony(reader.call(reg.fn("ceremony").encode(key)))
    return Ceremony(
        tuple(None if h == ZERO else Dealing.decode(_need(reader, h)) for h in dealt),
        tuple(bool(x) for x in disqualified),
        tuple(None if h == ZERO else DecryptionShare.decode(_need(reader, h)) for h in shares),
    )


def _need(reader: RegistryReader, digest: bytes) -> bytes:
    raw = reader.preimage(bytes(digest))
    if raw is None:
        raise LedgerError(f"no bytes under {bytes(digest).hex()} in this state database")
    return raw


def check_trustee_call(reader: RegistryReader, chain_id: str, sender: bytes, data: bytes) -> bytes | None:
    """Check one ceremony call (see the module); answers the bytes to keep under their
    hash (a dealing or a share), None for other calls or ones the registry will refuse."""
    call = registry().ceremony_call(data)
    if call is None:
        return None
    name, key, args = call
    election = election_of(reader, key)
    if election is None or not election.has_ceremony:
        return None  # the registry reverts: unknown_election / not_trustee
    ctx = ceremony_context(chain_id, election)
    trustee = _index_of(election, sender)
    try:
        if name == "set_joint_key":
            _check_key(read_ceremony(reader, key), bytes(args[0]))
            return None
        if trustee is None:
            return None  # the registry reverts: not_trustee
        if name == "post_dealing":
            check_dealing(ctx, Dealing.decode(bytes(args[0])), trustee)
            return bytes(args[0])
        if name == "post_complaint":
            _check_complaint(ctx, read_ceremony(reader, key), trustee, int(args[0]), bytes(args[1]))
            return None
        share = DecryptionShare.decode(bytes(args[0]))
        if share.trustee != trustee or len(share.entries) != choice_count(election):
            raise InvalidCeremonyMessage(
                f"a decryption share from trustee {trustee} needs its number and {choice_count(election)} entries")
        return bytes(args[0])
    except InvalidCeremonyMessage:
        raise
    except LedgerError as exc:
        raise InvalidCeremonyMessage(f"{name} {election.election_id}: {exc.code}: {exc.message}") from None


def _index_of(election: ElectionDef, sender: bytes) -> int | None:
    for i, public in enumerate(election.trustees, start=1):
        if address_of(public) == sender:
            return i
    return None


def _check_key(ceremony: Ceremony, key: bytes) -> None:
    if key != ceremony.joint_key():
        raise InvalidCeremonyMessage("the joint key is not the one the qualified dealings give")


def _check_complaint(ctx: CeremonyContext, ceremony: Ceremony, trustee: int, dealer: int, raw: bytes) -> None:
    complaint = Complaint.decode(raw)
    if complaint.encode() != raw or (complaint.recipient, complaint.dealer) != (trustee, dealer):
        raise InvalidCeremonyMessage(f"the complaint must be trustee {trustee}'s against trustee {dealer}")
    dealing = ceremony.dealings[dealer - 1] if 1 <= dealer <= len(ceremony.dealings) else None
    if dealing is None:
        return  # the registry reverts: no_dealing
    if not complaint_upheld(ctx, complaint, dealing.share_to(trustee), dealing.commitments):
        raise InvalidCeremonyMessage(f"trustee {dealer}'s share to trustee {trustee} decrypts and verifies: "
                                     "the complaint is false")


__all__ = ["REGISTRY_ADDRESS", "Ceremony", "InvalidCeremonyMessage", "check_trustee_call", "read_ceremony"]
