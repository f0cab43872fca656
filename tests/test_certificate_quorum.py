"""CommitCertificate.check's quorum, on validator sets where the thresholds differ.

With four validators of equal power, "more than 2/3", "at least 2/3" and "more than 1/2"
all need three signers, so tests on such a set cannot tell them apart. These sets can:
three and six validators (exactly 2/3 is reachable), seven (more than half is not more
than 2/3), and unequal powers.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations, pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.block import CommitCertificate, CommitSignature, VoteKind, vote_digest
from ledger.crypto import SigningKey
from ledger.errors import BadCertificate, InsufficientQuorum
from ledger.genesis import ValidatorInfo, ValidatorSet
from ledger.hashing import keccak256

CHAIN = "quorum-chain"
BLOCK = keccak256(b"the block")
# (powers, the signers of the largest power that is still refused, those of the smallest
# power accepted); the comment gives their power of the total.
SETS = [
    ((1, 1, 1), (0, 1), (0, 1, 2)),  # 2 of 3 (exactly 2/3) / 3
    ((1,) * 6, (0, 1, 2, 3), (0, 1, 2, 3, 4)),  # 4 of 6 (exactly 2/3) / 5
    ((1,) * 7, (0, 1, 2, 3), (0, 1, 2, 3, 4)),  # 4 of 7 (more than 1/2) / 5
    ((1, 2, 3), (0, 2), (1, 2)),  # 4 of 6 (exactly 2/3) / 5
    ((3, 1, 1, 1, 1, 1, 1), (0, 1, 2, 3), (0, 1, 2, 3, 4)),  # 6 of 9 (exactly 2/3) / 7
    ((5, 4, 3, 2, 1), (0, 1, 4), (0, 1, 3)),  # 10 of 15 (exactly 2/3) / 11
    ((10, 1, 1, 1, 1, 1), (0,), (0, 1)),  # 10 of 15 (exactly 2/3) / 11: one heavy validator
]


@cache
def key(i: int) -> SigningKey:
    return SigningKey.from_seed(f"quorum-validator-{i}".encode())


def validator_set(powers: tuple[int, ...]) -> ValidatorSet:
    return ValidatorSet(tuple(ValidatorInfo(f"v{i}", key(i).public_key, p) for i, p in enumerate(powers)))


def certificate(signers: tuple[int, ...]) -> CommitCertificate:
    return CommitCertificate.create(
        [(i, key(i)) for i in signers], chain_id=CHAIN, height=5, round_=1, block_hash=BLOCK
    )


def check(cert: CommitCertificate, validators: ValidatorSet) -> None:
    cert.check(validators, chain_id=CHAIN, height=5, block_hash=BLOCK)


@pytest.mark.parametrize("powers, refused, accepted", SETS)
def test_exactly_two_thirds_is_refused_and_just_above_is_accepted(
    powers: tuple[int, ...], refused: tuple[int, ...], accepted: tuple[int, ...]
) -> None:
    """Fails when the threshold is ">= 2/3" (the exactly-2/3 sets are accepted) or "> 1/2"
    (every refused set here holds more than half): both tried by hand in
    ``ValidatorSet.has_quorum``."""
    validators = validator_set(powers)
    total = sum(powers)
    refused_power = sum(powers[i] for i in refused)
    accepted_power = sum(powers[i] for i in accepted)
    # The table is what its comments say: the largest refused and smallest accepted power.
    assert 3 * refused_power <= 2 * total < 3 * accepted_power
    every = [sum(powers[i] for i in c) for k in range(len(powers) + 1) for c in combinations(range(len(powers)), k)]
    assert refused_power == max(p for p in every if 3 * p <= 2 * total)
    assert accepted_power == min(p for p in every if 3 * p > 2 * total)
    with pytest.raises(InsufficientQuorum):
        check(certificate(refused), validators)
    check(certificate(accepted), validators)


@cache
def signature(i: int) -> bytes:
    return key(i).sign(vote_digest(CHAIN, VoteKind.PRECOMMIT, 5, 1, BLOCK))


def signed_by(signers: list[int] | tuple[int, ...]) -> CommitCertificate:
    return CommitCertificate(CHAIN, 5, 1, BLOCK, tuple(CommitSignature(i, signature(i)) for i in signers))


@given(st.lists(st.integers(1, 6), min_size=1, max_size=6), st.lists(st.integers(0, 6), max_size=8))
def test_certificate_check_matches_the_definition(power_list: list[int], raw_signers: list[int]) -> None:
    """Over random power sets, every subset of signers in index order is accepted exactly
    when the sum of its distinct signers' power * 3 > total * 2 (all subsets, so each set's
    exactly-2/3 subsets are always among them); a drawn signer list that repeats a signer,
    is out of order or names an unknown validator is refused as malformed. Fails with
    ">= 2/3" or "> 1/2" in ``ValidatorSet.has_quorum`` (both tried by hand)."""
    powers = tuple(power_list)
    validators = validator_set(powers)
    total = sum(powers)
    for k in range(len(powers) + 1):
        for subset in combinations(range(len(powers)), k):
            if 3 * sum(powers[i] for i in subset) > 2 * total:
                check(signed_by(subset), validators)
            else:
                with pytest.raises(InsufficientQuorum):
                    check(signed_by(subset), validators)
    signers = [i % (len(powers) + 1) for i in raw_signers]  # now and then an unknown index
    canonical = all(i < len(powers) for i in signers) and all(a < b for a, b in pairwise(signers))
    if not canonical:
        with pytest.raises(BadCertificate):
            check(signed_by(signers), validators)
