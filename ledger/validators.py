"""The validator set in force at each height: genesis's, then each authority change.

One implementation for everyone who asks "whose signatures count at height h": the
rules (a block's proposer, its validator-set hash, the certificate it carries), consensus,
block sync, followers, the verifier's replay and its checks of checkpoints. Pure: the
changes come in as values (the registry holds them: ``contracts.engine`` reads them from
a state, and ``ledger.rules.validators_at`` asks it).

A change is made by the authority's registry call ``change_validators`` in block ``H``
and is in force from height ``H + VALIDATOR_CHANGE_DELAY``. Every node knows the set of
height ``h + 1`` once it committed ``h - 1``, so when it starts height ``h`` it can check
the votes it buffers for ``h + 1``; and the certificate of block ``h`` is checked against
the set of ``h``, never a later one, so a removed validator's signature stops counting
exactly at its effective height.

A change removes one key, adds one, or both at once (a replacement: the new key takes
the old one's place, so the others keep their indexes). It is refused when it removes a
key not in the set, adds one already in it, or leaves fewer than ``MIN_VALIDATORS`` or
more than ``MAX_VALIDATORS`` validators (the set it applies to is the latest scheduled
one, so changes compose in the order the chain carries them).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from ledger import codec
from ledger.crypto import check_public_key
from ledger.errors import LedgerError
from ledger.genesis import MAX_VALIDATOR_NAME_BYTES, MAX_VALIDATORS, ValidatorInfo, ValidatorSet

VALIDATOR_CHANGE_DELAY = 2  # a change carried by block H is in force from height H + 2
MIN_VALIDATORS = 4  # 3f + 1 with f = 1: below this a set tolerates no fault
MAX_VALIDATOR_CHANGES = 1024  # over a chain's life (the registry's bound)


class BadValidatorChange(LedgerError):
    code = "bad_validator_change"


@dataclass(frozen=True)
class ValidatorChange:
    """One authority change, as the registry records it. ``removed``: a key, or empty;
    ``added``: the validator it adds, or None (at least one of the two)."""

    height: int  # the block that carried it
    removed: bytes
    added: ValidatorInfo | None

    @property
    def effective_height(self) -> int:
        return self.height + VALIDATOR_CHANGE_DELAY

    def check_form(self) -> None:
        """What the change says alone: keys on the curve, a name and a positive power."""
        if not self.removed and self.added is None:
            raise BadValidatorChange("a change removes a validator, adds one, or both")
        if self.removed:
            check_public_key(self.removed)
        if self.added is not None:
            a = self.added
            check_public_key(a.public_key)
            if not a.name or len(a.name.encode()) > MAX_VALIDATOR_NAME_BYTES:
                raise BadValidatorChange(f"a validator's name is 1 to {MAX_VALIDATOR_NAME_BYTES} bytes")
            if not 0 < a.power < 2**64:
                raise BadValidatorChange("a validator's power is a positive integer below 2^64")
            if a.public_key == self.removed:
                raise BadValidatorChange("a replacement needs a new key")

    def encode(self) -> bytes:
        added: codec.Item = [] if self.added is None else self.added.item()
        return codec.encode([codec.int_bytes(self.height), self.removed, added])

    @classmethod
    def decode(cls, data: bytes) -> ValidatorChange:
        f = codec.as_list(codec.decode(data), 3, "validator change")
        added_items = codec.as_list(f[2], None, "validator change added")
        added = None
        if added_items:
            a = codec.as_list(f[2], 3, "validator change added")
            added = ValidatorInfo(
                codec.as_text(a[0], "validator name", max_size=MAX_VALIDATOR_NAME_BYTES),
                codec.as_bytes(a[1], "validator key", size=33),
                codec.as_int(a[2], "validator power"),
            )
        change = cls(codec.as_int(f[0], "change height"), codec.as_bytes(f[1], "removed key"), added)
        if change.encode() != data:
            raise BadValidatorChange("validator change: non-canonical encoding")
        return change


def apply_change(current: ValidatorSet, change: ValidatorChange) -> ValidatorSet:
    """The set after ``change``; raises BadValidatorChange if the rules refuse it."""
    change.check_form()
    members = list(current.validators)
    keys = [v.public_key for v in members]
    if change.added is not None and change.added.public_key in keys:
        raise BadValidatorChange(f"{change.added.public_key.hex()[:16]}.. is already a validator")
    if change.removed:
        if change.removed not in keys:
            raise BadValidatorChange(f"{change.removed.hex()[:16]}.. is not a validator")
        at = keys.index(change.removed)
        if change.added is not None:
            members[at] = change.added  # a replacement keeps everyone's index
        else:
            del members[at]
    elif change.added is not None:
        members.append(change.added)
    if not MIN_VALIDATORS <= len(members) <= MAX_VALIDATORS:
        raise BadValidatorChange(
            f"the set would have {len(members)} validators; it needs {MIN_VALIDATORS} to {MAX_VALIDATORS}")
    return ValidatorSet(tuple(members))


@dataclass(frozen=True)
class ValidatorSchedule:
    """Genesis's set and, in chain order, each change with the set it makes."""

    genesis: ValidatorSet
    changes: tuple[ValidatorChange, ...] = ()
    _sets: tuple[ValidatorSet, ...] = ()  # after each change (derived)

    @classmethod
    def build(cls, genesis: ValidatorSet, changes: Iterable[ValidatorChange]) -> ValidatorSchedule:
        """Raises BadValidatorChange if one of ``changes`` is refused (never on a chain:
        every validator refused it before it could enter a block)."""
        schedule = cls(genesis)
        for change in changes:
            schedule = schedule.with_change(change)
        return schedule

    def with_change(self, change: ValidatorChange) -> ValidatorSchedule:
        if self.changes and change.height < self.changes[-1].height:
            raise BadValidatorChange("changes are applied in the order blocks carry them")
        if len(self.changes) >= MAX_VALIDATOR_CHANGES:
            raise BadValidatorChange(f"a chain makes at most {MAX_VALIDATOR_CHANGES} validator changes")
        after = apply_change(self.latest, change)
        return ValidatorSchedule(self.genesis, (*self.changes, change), (*self._sets, after))

    @property
    def latest(self) -> ValidatorSet:
        """The set once every scheduled change is in force."""
        return self._sets[-1] if self._sets else self.genesis

    def at(self, height: int) -> ValidatorSet:
        """The set in force at ``height``: after every change with effective height at
        most ``height``."""
        n = bisect.bisect_right([c.effective_height for c in self.changes], height)
        return self._sets[n - 1] if n else self.genesis

    def heights(self) -> tuple[int, ...]:
        """The heights from which a new set is in force."""
        return tuple(c.effective_height for c in self.changes)
