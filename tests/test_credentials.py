"""The credential tree: its order is the keys' byte order, never the roll's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey

KEYS = [SigningKey.from_seed(f"tests/credentials/{i}".encode()).public_key for i in range(40)]


@settings(max_examples=25, deadline=None)
@given(st.permutations(KEYS))
def test_any_roll_order_gives_the_same_tree_and_proofs(roll: list[bytes]) -> None:
    """Fails when the tree keeps the roll's order (tried: enumerate(credentials) in place
    of the sorted order makes the index follow the roll)."""
    reference = CredentialSet(KEYS)
    shuffled = CredentialSet(roll)
    assert shuffled.root == reference.root == merkle.root(sorted(KEYS))
    for key in roll[:5]:
        assert shuffled.proof(key) == reference.proof(key)
        assert shuffled.proof(key).index == sorted(KEYS).index(key)
