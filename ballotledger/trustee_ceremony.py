"""One trustee's side of the key ceremony, as pure steps over the ceremony the registry
holds (``contracts.ceremony.Ceremony``); ``trustee_cli`` does the I/O.

A trustee j, at every look at the registry:

a) posts its dealing if it has not (the polynomial is already in its key file);
b) decrypts and checks the share of every dealing posted to it, and complains of each
   bad one whose dealer is not disqualified yet (while the ceremony is in setup);
c) once the authority set the joint key, computes x_j = sum over the qualified dealers
   i of f_i(j) (its own f_j(j) where it is one of them) and checks g^x_j against the
   public share key the commitments imply, before it keeps x_j.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.ceremony import Ceremony
from ledger.errors import BadShare
from ledger.group import base_mul
from ledger.tally_crypto import TallyContext
from ledger.trustees import CeremonyContext, TrusteeSecret, combine_shares, decrypt_share, verify_share


def received_share(ctx: CeremonyContext, ceremony: Ceremony, secret: TrusteeSecret, dealer: int) -> int | None:
    """Dealer's share to this trustee if it decrypts and verifies, else None."""
    dealing = ceremony.dealings[dealer - 1]
    assert dealing is not None
    try:
        share = decrypt_share(ctx, dealing.share_to(secret.index), secret)
    except BadShare:
        return None
    return share if verify_share(share, secret.index, dealing.commitments) else None


@dataclass(frozen=True)
class Plan:
    """What trustee ``secret.index`` does next on the ceremony as it stands."""

    deal: bool  # its dealing is not posted yet
    complain_against: tuple[int, ...]  # dealers whose share to it is bad and not yet disqualified
    bad_dealers: tuple[int, ...]  # every dealer whose share to it is bad
    waiting_for: tuple[int, ...]  # trustees whose dealing is not posted yet


def plan(ctx: CeremonyContext, ceremony: Ceremony, secret: TrusteeSecret) -> Plan:
    j = secret.index
    bad = tuple(i for i, d in enumerate(ceremony.dealings, start=1)
                if d is not None and i != j and received_share(ctx, ceremony, secret, i) is None)
    return Plan(
        deal=ceremony.dealings[j - 1] is None,
        complain_against=tuple(i for i in bad if not ceremony.disqualified[i - 1]),
        bad_dealers=bad,
        waiting_for=tuple(i for i, d in enumerate(ceremony.dealings, start=1) if d is None and i != j),
    )


def final_share(ctx: CeremonyContext, ceremony: Ceremony, secret: TrusteeSecret) -> int:
    """x_j over the qualified dealers; ``BadShare`` naming a qualified dealer whose share
    to j is bad (the ceremony ended without j's complaint: j holds no usable share)."""
    j = secret.index
    received = []
    for i in ceremony.qualified():
        if i == j:
            received.append(secret.evaluate(j))
            continue
        share = received_share(ctx, ceremony, secret, i)
        if share is None:
            raise BadShare(f"trustee {i}'s share to trustee {j} is bad, and the ceremony ended without a complaint",
                           where=f"trustee {i} to trustee {j}")
        received.append(share)
    return combine_shares(received)


def share_matches(tally: TallyContext, trustee: int, share: int) -> bool:
    """Whether g^share is the public share key X_j the ceremony's commitments imply."""
    point = base_mul(share)
    return point is not None and point.encode() == tally.share_keys[trustee - 1]
