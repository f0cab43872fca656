"""The seen-credentials filter never says "not seen" for a pair it was given."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.seen_filter import SeenFilter, filter_bits

credentials = st.binary(min_size=33, max_size=33)
elections = st.sampled_from(["national-2026", "union", "e"])


@settings(max_examples=200)
@given(st.lists(st.tuples(elections, credentials), max_size=300), st.lists(st.tuples(elections, credentials),
                                                                            max_size=50))
def test_no_false_negatives(added: list[tuple[str, bytes]], others: list[tuple[str, bytes]]) -> None:
    seen = SeenFilter(len(added))
    for election_id, credential in added:
        seen.add(election_id, credential)
    assert all(seen.maybe_seen(e, c) for e, c in added)
    # pairs never added: at this load nearly always "not seen" (a shared bit is allowed)
    fresh = [p for p in others if p not in added]
    assert sum(seen.maybe_seen(e, c) for e, c in fresh) <= max(2, len(fresh) // 4)


def test_same_credential_in_two_elections_is_two_pairs() -> None:
    seen = SeenFilter(1)
    credential = b"\x02" + bytes(range(32))
    seen.add("a", credential)
    assert seen.maybe_seen("a", credential) and not seen.maybe_seen("b", credential)


def test_size_is_fixed_by_the_credentials_registered() -> None:
    assert filter_bits(0) == 1 << 16
    assert filter_bits(10_000_000) == 1 << 28  # 16 bits a credential, to a power of two
    assert filter_bits(10**9) == 1 << 30  # capped
    assert SeenFilter(10_000_000).size_bytes == 1 << 25
