"""A complete key ceremony among in-memory trustees, for the trustee and tally tests."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.group import Point
from ledger.trustees import (
    CeremonyContext,
    Commitments,
    EncryptedShare,
    TrusteeSecret,
    combine_shares,
    deal,
    decrypt_share,
    joint_key,
    qualified_dealers,
)


@dataclass
class Ceremony:
    ctx: CeremonyContext
    secrets: dict[int, TrusteeSecret]  # with their final shares
    commitments: list[Commitments]
    shares: list[EncryptedShare]
    key: Point


def run_ceremony(n: int = 5, t: int = 3, chain: str = "chain-a", election: str = "e-2026") -> Ceremony:
    drafts = {i: TrusteeSecret.generate(i, t) for i in range(1, n + 1)}
    ctx = CeremonyContext(chain, election, tuple(drafts[i].encryption_key for i in range(1, n + 1)), t)
    commitments, shares = [], []
    for secret in drafts.values():
        c, s = deal(ctx, secret)
        commitments.append(c)
        shares.extend(s)
    qualified = qualified_dealers(ctx, commitments)
    final = {}
    for j, secret in drafts.items():
        received = [decrypt_share(ctx, s, secret) for s in shares if s.recipient == j]
        final[j] = secret.with_share(combine_shares([*received, secret.evaluate(j)]))
    return Ceremony(ctx, final, commitments, shares, joint_key(qualified))
