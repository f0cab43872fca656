"""The roll holder's files: the roll (keys with references) and the public credential list."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballotledger import roll as roll_module
from ballotledger.roll import (
    CREDENTIALS_JSON_DEPTH,
    CredentialList,
    DuplicateRegistration,
    NotListed,
    Roll,
    RollEntry,
    parse_public_key,
)
from ledger import merkle
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey
from ledger.errors import BadEncoding, BadInclusionProof, BadPublicKey, LedgerError, TooDeep

KEYS = [SigningKey.from_seed(f"tests/roll/{i}".encode()).public_key for i in range(24)]
REFS = [f"NL-{i:06d}" for i in range(24)]


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(zip(KEYS, REFS, strict=True))))
def test_the_issued_list_does_not_depend_on_the_import_order(order: list[tuple[bytes, str]]) -> None:
    """Fails when issue keeps the roll's order (tried: CredentialList.of without its sort
    makes the list's bytes follow the import order)."""
    reference = Roll(RollEntry(k, r) for k, r in zip(KEYS, REFS, strict=True)).issue()
    issued = Roll(RollEntry(k, r) for k, r in order).issue()
    assert issued.to_json() == reference.to_json()
    assert issued.root == CredentialSet(KEYS).root == merkle.root(sorted(KEYS))
    assert list(issued.public_keys) == sorted(KEYS)
    for key, ref in order[:3]:
        assert issued.proof(key).index == sorted(KEYS).index(key)
        assert ref not in issued.to_json()


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=len(KEYS)), st.data())
def test_every_proof_verifies_against_the_root_and_no_other(n: int, data: st.DataObject) -> None:
    keys = data.draw(st.permutations(KEYS))[:n]
    issued = CredentialList.from_json(CredentialList.of(keys).to_json().encode())
    assert issued.count == n
    for key in keys:
        proof = issued.proof(key)
        merkle.verify_inclusion(key, proof.index, issued.count, proof.path, issued.root)
        with pytest.raises(BadInclusionProof):
            merkle.verify_inclusion(key, proof.index, issued.count, proof.path, bytes(32))
    outsider = next(k for k in KEYS if k not in keys) if n < len(KEYS) else None
    if outsider is not None:
        with pytest.raises(NotListed):
            issued.proof(outsider)


def test_the_roll_round_trips_and_refuses_duplicates_without_changing() -> None:
    roll = Roll()
    roll.add(KEYS[0], "NL-1")
    roll.add(KEYS[1])
    with pytest.raises(DuplicateRegistration):
        roll.add(KEYS[0])
    with pytest.raises(DuplicateRegistration):
        roll.add(KEYS[2], "NL-1")
    with pytest.raises(BadPublicKey):
        roll.add(b"\x02" + b"\xff" * 32)  # x beyond the field: not on the curve
    with pytest.raises(BadEncoding):
        roll.add(KEYS[3], "two words")
    assert len(roll) == 2
    again = Roll.from_json(roll.to_json().encode())
    assert again.entries == roll.entries == (RollEntry(KEYS[0], "NL-1"), RollEntry(KEYS[1], None))
    assert again.to_json() == roll.to_json()


@pytest.mark.parametrize("edit", [
    lambda o: o["voters"].append(dict(o["voters"][0])),  # the same key twice
    lambda o: o["voters"][1].update(voter_ref="NL-1"),  # the same reference twice
    lambda o: o["voters"][0].update(public_key=o["voters"][0]["public_key"].upper()),
    lambda o: o["voters"][0].update(extra=1),
    lambda o: o.update(format="ballot-ledger/roll/v0"),
    lambda o: o["voters"][0].update(voter_ref=7),
])
def test_a_bad_roll_file_is_refused(edit: object) -> None:
    obj = json.loads(Roll([RollEntry(KEYS[0], "NL-1"), RollEntry(KEYS[1], None)]).to_json())
    edit(obj)  # type: ignore[operator]
    with pytest.raises(LedgerError):
        Roll.from_json(json.dumps(obj).encode())


@pytest.mark.parametrize("edit", [
    lambda o: o["public_keys"].reverse(),  # out of order
    lambda o: o["public_keys"].append(o["public_keys"][-1]),  # repeated
    lambda o: o.update(credential_count=o["credential_count"] + 1),
    lambda o: o.update(credential_root="00" * 32),
    lambda o: o.update(credential_count=True),
    lambda o: o.update(voter_refs=[]),
    lambda o: o.update(public_keys=[]),
    lambda o: o["public_keys"].__setitem__(0, "02" + "ff" * 32),  # off the curve (and still first in order)
])
def test_a_bad_credential_list_is_refused(edit: object) -> None:
    obj = json.loads(CredentialList.of(KEYS[:5]).to_json())
    edit(obj)  # type: ignore[operator]
    with pytest.raises(LedgerError):
        CredentialList.from_json(json.dumps(obj).encode())


def test_a_nested_list_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(TooDeep):
        CredentialList.from_json(b"[" * (CREDENTIALS_JSON_DEPTH + 1) + b"]" * (CREDENTIALS_JSON_DEPTH + 1))


def test_the_widest_entries_fit_the_size_bounds() -> None:
    """The file ceilings rest on every entry's line fitting its bound: an entry with the
    longest reference, and a key line of the list."""
    widest = Roll([RollEntry(KEYS[0], "A" * 64)]).to_json().splitlines()[1]
    assert len(widest) + 2 <= roll_module._MAX_ROLL_ENTRY_BYTES
    key_line = CredentialList.of(KEYS[:1]).to_json().splitlines()[5]
    assert KEYS[0].hex() in key_line and len(key_line) + 2 <= roll_module._MAX_LIST_ENTRY_BYTES


def test_a_public_key_is_read_as_a_voter_types_it() -> None:
    assert parse_public_key(" 0x" + KEYS[0].hex().upper() + "\n") == KEYS[0]
    for bad in ("", "02", KEYS[0].hex()[:-2], "zz" * 33, "04" + KEYS[0].hex()[2:]):
        with pytest.raises(LedgerError):
            parse_public_key(bad)
