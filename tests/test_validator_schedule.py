"""ledger.validators: the set in force at each height, over random change sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.genesis import ValidatorInfo, ValidatorSet
from ledger.validators import (
    MIN_VALIDATORS,
    VALIDATOR_CHANGE_DELAY,
    BadValidatorChange,
    ValidatorChange,
    ValidatorSchedule,
    apply_change,
)

POOL = [SigningKey.from_seed(f"schedule/{i}".encode()).public_key for i in range(10)]


def info(i: int, power: int = 1) -> ValidatorInfo:
    return ValidatorInfo(f"v{i}", POOL[i], power)


GENESIS = ValidatorSet(tuple(info(i) for i in range(5)))

# A change: (block height step, removed key index or None, added key index or None, power)
change_st = st.tuples(
    st.integers(0, 3), st.one_of(st.none(), st.integers(0, 9)), st.one_of(st.none(), st.integers(0, 9)),
    st.integers(1, 3),
)


def _model(genesis: ValidatorSet, accepted: list[ValidatorChange], height: int) -> list[bytes]:
    """A second, plain reading of the rule: walk the changes in force at ``height``."""
    keys = [v.public_key for v in genesis.validators]
    for c in accepted:
        if c.height + VALIDATOR_CHANGE_DELAY > height:
            break
        if c.removed and c.added is not None:
            keys[keys.index(c.removed)] = c.added.public_key
        elif c.removed:
            keys.remove(c.removed)
        elif c.added is not None:
            keys.append(c.added.public_key)
    return keys


@settings(max_examples=150)
@given(steps=st.lists(change_st, max_size=25))
def test_set_at_each_height_matches_the_walk_and_keeps_the_rules(
    steps: list[tuple[int, int | None, int | None, int]],
) -> None:
    """Fails when ``at`` uses a change before its effective height, or a refused change
    enters the schedule (a set below 4, a duplicate key)."""
    schedule = ValidatorSchedule(GENESIS)
    accepted: list[ValidatorChange] = []
    height = 1
    for step, removed, added, power in steps:
        height += step
        change = ValidatorChange(
            height, POOL[removed] if removed is not None else b"",
            info(added, power) if added is not None else None,
        )
        before = schedule.latest
        try:
            schedule = schedule.with_change(change)
        except BadValidatorChange:
            # Refused: it would leave the set invalid, or names a missing or present key.
            keys = [v.public_key for v in before.validators]
            size = len(keys) - (1 if change.removed and change.added is None else 0) + (
                1 if change.added is not None and not change.removed else 0)
            assert (
                (not change.removed and change.added is None)
                or (change.removed and change.removed not in keys)
                or (change.added is not None and change.added.public_key in keys)
                or (change.added is not None and change.added.public_key == change.removed)
                or size < MIN_VALIDATORS
            )
            continue
        accepted.append(change)
    last = height + VALIDATOR_CHANGE_DELAY + 2
    for h in range(0, last + 1):
        in_force = schedule.at(h)
        assert [v.public_key for v in in_force.validators] == _model(GENESIS, accepted, h)
        assert len(in_force) >= MIN_VALIDATORS
        assert len({v.public_key for v in in_force.validators}) == len(in_force)
    assert schedule.at(last) == schedule.latest
    # The set changes only at effective heights.
    for h in range(1, last + 1):
        if schedule.at(h) != schedule.at(h - 1):
            assert h in schedule.heights()
    # Rebuilt from the changes alone, the schedule is the same value.
    assert ValidatorSchedule.build(GENESIS, accepted) == schedule


@given(removed=st.one_of(st.none(), st.integers(0, 9)), added=st.one_of(st.none(), st.integers(0, 9)),
       height=st.integers(0, 2**40))
def test_change_encoding_round_trips_and_refuses_trailing_bytes(
    removed: int | None, added: int | None, height: int
) -> None:
    change = ValidatorChange(height, POOL[removed] if removed is not None else b"",
                             info(added, 7) if added is not None else None)
    assert ValidatorChange.decode(change.encode()) == change
    with pytest.raises(LedgerError):
        ValidatorChange.decode(change.encode() + b"\x00")


def test_replacement_keeps_indexes_and_removal_shifts() -> None:
    replaced = apply_change(GENESIS, ValidatorChange(3, POOL[1], info(7)))
    assert [v.public_key for v in replaced.validators] == [POOL[0], POOL[7], POOL[2], POOL[3], POOL[4]]
    removed = apply_change(GENESIS, ValidatorChange(3, POOL[1], None))
    assert [v.public_key for v in removed.validators] == [POOL[0], POOL[2], POOL[3], POOL[4]]
    with pytest.raises(BadValidatorChange, match="needs 4"):
        apply_change(removed, ValidatorChange(4, POOL[0], None))
    with pytest.raises(BadValidatorChange, match="already a validator"):
        apply_change(GENESIS, ValidatorChange(4, b"", info(2)))
    with pytest.raises(BadValidatorChange, match="not a validator"):
        apply_change(GENESIS, ValidatorChange(4, POOL[9], None))
    with pytest.raises(LedgerError):
        apply_change(GENESIS, ValidatorChange(4, b"\x02" + b"\x00" * 32, None))  # off the curve


def test_in_force_from_the_effective_height_exactly() -> None:
    schedule = ValidatorSchedule.build(GENESIS, [ValidatorChange(10, b"", info(8))])
    assert schedule.at(10 + VALIDATOR_CHANGE_DELAY - 1) == GENESIS
    assert len(schedule.at(10 + VALIDATOR_CHANGE_DELAY)) == 6
    with pytest.raises(BadValidatorChange, match="order"):
        schedule.with_change(ValidatorChange(9, b"", info(9)))
