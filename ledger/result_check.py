"""The check of a published encrypted result, one function for whoever checks it.

Given what the key ceremony fixed (a ``TallyContext``: the joint key, the threshold and
every trustee's public share key, from the qualified dealers' commitments), the sums
recomputed from exactly the counted ballots (an ``EncryptedTally``), the decryption
shares posted and the counts published, :func:`check_result` checks, in this order
(cheap and structural first, the proofs last):

a) the sums and the context are for the same chain and election;
b) one count per choice, none above the number of ballots summed;
c) every posted share's proof (``tally_crypto.verify_tally``): a share with a bad proof,
   a duplicate, a share from a non-trustee is refused and named, and the result stands
   on any ``threshold`` good ones;
d) per choice, g^count = beta / prod D_j^lambda_j over those shares.

It raises ``BadTally`` naming where (``sums``, ``counts``, ``choice c``) or
``InsufficientShares`` (at ``decryption shares``, the refused trustees and why in its
message), and returns the trustees whose shares were combined and those refused.
Shares as a registry holds them (bytes, by who posted them) go through
:func:`decode_posted_shares` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger.encrypted_tally import EncryptedTally
from ledger.errors import BadDecryptionShare, BadTally, InsufficientShares, LedgerError
from ledger.tally_crypto import DecryptionShare, TallyContext, verify_tally


@dataclass(frozen=True)
class ResultCheck:
    """A published result that checked out: its counts, the trustees whose shares were
    combined, and every refused share's trustee with the code and place of its fault."""

    counts: tuple[int, ...]
    used: tuple[int, ...]
    refused: Mapping[int, str]


def decode_posted_shares(posted: Iterable[tuple[int, bytes]]) -> tuple[list[DecryptionShare], dict[int, str]]:
    """Shares as posted, each with the trustee index of who posted it: the decoded ones,
    and the others refused by poster with why (bytes that do not decode, or a share made
    as another trustee). A refused share does not stop the check: t good ones suffice."""
    shares: list[DecryptionShare] = []
    refused: dict[int, str] = {}
    for poster, raw in posted:
        try:
            share = DecryptionShare.decode(raw)
        except LedgerError as exc:
            refused[poster] = str(exc.at(f"trustee {poster}"))
            continue
        if share.trustee != poster:
            refused[poster] = str(BadDecryptionShare(f"posted by trustee {poster} as trustee {share.trustee}'s share",
                                                     where=f"trustee {poster}"))
            continue
        shares.append(share)
    return shares, refused


def check_result(
    context: TallyContext, sums: EncryptedTally, shares: Sequence[DecryptionShare], counts: Sequence[int], *,
    refused: Mapping[int, str] | None = None,
) -> ResultCheck:
    """Check a published result against the recomputed sums (see the module's a to d).
    ``refused``: shares refused before this check (``decode_posted_shares``), reported
    with those it refuses."""
    earlier = dict(refused or {})
    if (sums.chain_id, sums.election_id) != (context.chain_id, context.election_id):
        raise BadTally(f"the sums are for election {sums.election_id!r} of chain {sums.chain_id!r}, the "
                       f"ceremony for {context.election_id!r} of {context.chain_id!r}", where="sums")
    if len(counts) != len(sums.sums):
        raise BadTally(f"{len(counts)} counts published for {len(sums.sums)} choices", where="counts")
    for c, count in enumerate(counts):
        if not 0 <= count <= sums.ballots:
            raise BadTally(f"the published count {count} is outside [0, {sums.ballots}], the ballots summed",
                           where=f"choice {c}")
    try:
        outcome = verify_tally(context, sums.sums, shares, counts, sums.ballots)
    except InsufficientShares as exc:
        message = exc.message if not earlier else f"{exc.message}; refused before: {earlier}"
        raise InsufficientShares(message, where="decryption shares") from None
    return ResultCheck(outcome.counts, outcome.used, {**earlier, **outcome.rejected})
