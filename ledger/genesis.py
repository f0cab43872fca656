"""Genesis: the chain id, validator set, election authority, parameters and elections.

The genesis file is JSON for people; its hash, over the canonical RLP encoding, is what
observers pin. Every field of the JSON is in that encoding, so none can change unnoticed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ledger import codec, encrypted_ballot, jsonbound, jsonfields
from ledger.codec import Item
from ledger.crypto import SigningKey, check_public_key
from ledger.errors import BadEncoding, BadGenesis, BadPublicKey, LedgerError, Oversized, TooDeep
from ledger.hashing import HASH_SIZE, tag, tagged_hash

GENESIS_TAG = tag("genesis/v1")
VALIDATOR_SET_TAG = tag("validator-set/v1")
# Identifiers (chain, election, validator names): the one definition, also the gateway's
# URL pattern, so an id the chain accepts is always one the API can name.
IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_ID_RE = re.compile(IDENTIFIER_PATTERN)
REVOTING_POLICIES = ("first-counts", "last-counts")
PLAINTEXT_SCHEME = "plaintext-choice/v1"
ENCRYPTED_SCHEME = encrypted_ballot.SCHEME
PAYLOAD_SCHEMES = (PLAINTEXT_SCHEME, "opaque/v1", ENCRYPTED_SCHEME)
MAX_CONTESTS = 32  # per encrypted election (ledger.encrypted_ballot allows 64)
MAX_CONTEST_CHOICES = encrypted_ballot.MAX_CHOICES
MAX_CONTEST_QUESTION_BYTES = 256
MAX_TRUSTEES = 32  # per election: keeps the widest genesis JSON under 64 MiB (ledger.trustees allows 64)


def window_contains(opens_at_ms: int, closes_at_ms: int, time_ms: int) -> bool:
    """The voting window rule: open from ``opens_at_ms`` (included) to ``closes_at_ms``
    (excluded). The registry's records are read with it too."""
    return opens_at_ms <= time_ms < closes_at_ms

# Ceilings of every genesis, roomy for any real election. With them the largest genesis
# file has a size known in advance (:func:`max_genesis_json_bytes`), so a larger one is
# refused before it is read. Elections and choices are the registry contract's own limits.
MAX_VALIDATORS = 256
MAX_ELECTIONS = 256
MAX_CHOICES = 255
MAX_VALIDATOR_NAME_BYTES = 64
MAX_QUESTION_BYTES = 1024
MAX_CHOICE_BYTES = 128
# The widest definition (_widest_election) encodes to ~43 KB; the registry takes up to this.
MAX_DEFINITION_BYTES = 65_536
MAX_GENESIS_INT = 2**64 - 1
# genesis object > "elections" > an election > "contests" > a contest > "choices": the
# deepest a genesis nests
GENESIS_JSON_DEPTH = 6


def check_identifier(value: str, what: str) -> None:
    if not _ID_RE.match(value):
        raise BadGenesis(f"{what} {value!r} must match {_ID_RE.pattern}")


def _check_text(value: str, max_bytes: int, what: str) -> None:
    if len(value.encode()) > max_bytes:
        raise BadGenesis(f"{what} is longer than {max_bytes} bytes (UTF-8)")


def _check_int(value: int, what: str) -> None:
    if not 0 <= value <= MAX_GENESIS_INT:
        raise BadGenesis(f"{what} must be from 0 to 2**64-1")


@dataclass(frozen=True)
class ValidatorInfo:
    name: str
    public_key: bytes
    power: int

    def item(self) -> Item:
        return [self.name.encode(), self.public_key, codec.int_bytes(self.power)]


@dataclass(frozen=True)
class ValidatorSet:
    validators: tuple[ValidatorInfo, ...]
    _index: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.validators) <= MAX_VALIDATORS:
            raise BadGenesis(f"the validator set must have 1 to {MAX_VALIDATORS} validators")
        index: dict[bytes, int] = {}
        for i, v in enumerate(self.validators):
            _check_text(v.name, MAX_VALIDATOR_NAME_BYTES, "validator name")
            _check_int(v.power, f"validator {v.name}: power")
            if v.power <= 0:
                raise BadGenesis(f"validator {v.name}: power must be positive")
            if v.public_key in index:
                raise BadGenesis(f"validator {v.name}: duplicate public key")
            index[v.public_key] = i
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.validators)

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def has_quorum(self, power: int) -> bool:
        """More than two thirds of the total voting power (Tendermint's 2f+1)."""
        return 3 * power > 2 * self.total_power

    def index_of(self, public_key: bytes) -> int | None:
        return self._index.get(public_key)

    def proposer(self, height: int, round_: int) -> int:
        """Round-robin proposer index for (height, round)."""
        return (height + round_) % len(self.validators)

    def hash(self) -> bytes:
        return tagged_hash(VALIDATOR_SET_TAG, codec.encode([v.item() for v in self.validators]))


@dataclass(frozen=True)
class ChainParams:
    max_block_ballots: int = 4000
    max_ballot_bytes: int = 4096
    max_payload_bytes: int = 2048
    max_proof_depth: int = 40
    # The election registry on py-evm: phases, per-block checkpoints and results. Every
    # network `ballotledger init` makes runs it; a chain without it (tests of the ballot
    # rules alone, the consensus simulator) keeps the genesis windows and no state.
    contracts: bool = False

    def __post_init__(self) -> None:
        for name in ("max_block_ballots", "max_ballot_bytes", "max_payload_bytes", "max_proof_depth"):
            _check_int(getattr(self, name), f"params.{name}")

    def item(self) -> Item:
        return [
            codec.int_bytes(self.max_block_ballots),
            codec.int_bytes(self.max_ballot_bytes),
            codec.int_bytes(self.max_payload_bytes),
            codec.int_bytes(self.max_proof_depth),
            codec.int_bytes(int(self.contracts)),
        ]


@dataclass(frozen=True)
class Contest:
    """One question of an encrypted election: its choices, and at most how many of them
    a voter may select."""

    question: str
    choices: tuple[str, ...]
    limit: int = 1

    def __post_init__(self) -> None:
        if not 1 <= len(self.choices) <= MAX_CONTEST_CHOICES or not 1 <= self.limit <= len(self.choices):
            raise BadGenesis(
                f"contest {self.question!r}: needs 1 to {MAX_CONTEST_CHOICES} choices and a limit from 1 to "
                f"their number (has {len(self.choices)} choices, limit {self.limit})"
            )

    def item(self) -> Item:
        return [self.question.encode(), [c.encode() for c in self.choices], codec.int_bytes(self.limit)]

    def to_json_obj(self) -> dict[str, Any]:
        return {"question": self.question, "choices": list(self.choices), "limit": self.limit}


@dataclass(frozen=True)
class ElectionDef:
    """An election. A plaintext or opaque one asks ``question`` with ``choices``; an
    encrypted one (``ENCRYPTED_SCHEME``) has ``question`` as its title, no ``choices``,
    its ``contests``, and the joint public key ``joint_key`` that every ballot encrypts to.

    An encrypted election either names that key outright (tests, benchmarks, a key made
    elsewhere), or names its ``trustees`` (their public keys, trustee i at i - 1) and
    ``threshold``: it is then defined without a key, the trustees' ceremony on chain makes
    one, and the registry's state gives this definition ``with_joint_key`` (its canonical
    form, :meth:`as_defined`, stays keyless)."""

    election_id: str
    question: str
    choices: tuple[str, ...]
    credential_root: bytes
    credential_count: int
    opens_at_ms: int
    closes_at_ms: int
    revoting: str = "first-counts"
    payload_scheme: str = PLAINTEXT_SCHEME
    contests: tuple[Contest, ...] = ()
    joint_key: bytes = b""
    trustees: tuple[bytes, ...] = ()
    threshold: int = 0

    @property
    def encrypted(self) -> bool:
        return self.payload_scheme == ENCRYPTED_SCHEME

    @property
    def has_ceremony(self) -> bool:
        """Whether the joint key comes from the trustees' ceremony on chain."""
        return bool(self.trustees)

    def with_joint_key(self, key: bytes) -> ElectionDef:
        """This election once its ceremony made ``key``."""
        return dataclasses.replace(self, joint_key=key)

    def as_defined(self) -> ElectionDef:
        """The definition as its define transaction carried it (keyless if a ceremony makes the key)."""
        return dataclasses.replace(self, joint_key=b"") if self.has_ceremony else self

    def __post_init__(self) -> None:
        check_identifier(self.election_id, "election id")
        if len(self.credential_root) != HASH_SIZE:
            raise BadGenesis(f"election {self.election_id}: credential root must be 32 bytes")
        if self.closes_at_ms <= self.opens_at_ms:
            raise BadGenesis(f"election {self.election_id}: closes before it opens")
        if self.revoting not in REVOTING_POLICIES:
            raise BadGenesis(f"election {self.election_id}: revoting must be one of {REVOTING_POLICIES}")
        if self.payload_scheme not in PAYLOAD_SCHEMES:
            raise BadGenesis(f"election {self.election_id}: payload scheme must be one of {PAYLOAD_SCHEMES}")
        if self.payload_scheme == PLAINTEXT_SCHEME and not self.choices:
            raise BadGenesis(f"election {self.election_id}: needs 1 to {MAX_CHOICES} choices")
        if len(self.choices) > MAX_CHOICES:
            raise BadGenesis(f"election {self.election_id}: more than {MAX_CHOICES} choices")
        _check_text(self.question, MAX_QUESTION_BYTES, f"election {self.election_id}: question")
        for choice in self.choices:
            _check_text(choice, MAX_CHOICE_BYTES, f"election {self.election_id}: choice")
        for name in ("credential_count", "opens_at_ms", "closes_at_ms"):
            _check_int(getattr(self, name), f"election {self.election_id}: {name}")
        self._check_scheme_fields()

    def _check_scheme_fields(self) -> None:
        if not self.encrypted:
            if self.contests or self.joint_key or self.trustees or self.threshold:
                raise BadGenesis(
                    f"election {self.election_id}: contests, a joint key and trustees are for encrypted elections")
            return
        self._check_trustees()
        if self.choices:
            raise BadGenesis(f"election {self.election_id}: an encrypted election's choices are in its contests")
        if not 1 <= len(self.contests) <= MAX_CONTESTS:
            raise BadGenesis(f"election {self.election_id}: needs 1 to {MAX_CONTESTS} contests")
        if sum(len(c.choices) for c in self.contests) > MAX_CHOICES:  # the registry's count per result
            raise BadGenesis(f"election {self.election_id}: more than {MAX_CHOICES} choices in all its contests")
        for contest in self.contests:
            _check_text(contest.question, MAX_CONTEST_QUESTION_BYTES, f"election {self.election_id}: contest question")
            for choice in contest.choices:
                _check_text(choice, MAX_CHOICE_BYTES, f"election {self.election_id}: choice")
        if self.has_ceremony and not self.joint_key:
            return  # the ceremony makes the key
        try:
            check_public_key(self.joint_key)
        except BadPublicKey as exc:
            raise BadGenesis(f"election {self.election_id}: joint key: {exc.message}") from exc

    def _check_trustees(self) -> None:
        if not self.trustees:
            if self.threshold:
                raise BadGenesis(f"election {self.election_id}: a threshold needs trustees")
            return
        n = len(self.trustees)
        if not 1 <= n <= MAX_TRUSTEES or not 1 <= self.threshold <= n:
            raise BadGenesis(f"election {self.election_id}: needs 1 to {MAX_TRUSTEES} trustees and a threshold "
                             f"from 1 to their number (has {n} trustees, threshold {self.threshold})")
        if len(set(self.trustees)) != n:
            raise BadGenesis(f"election {self.election_id}: a trustee key appears twice")
        for i, key in enumerate(self.trustees, start=1):
            try:
                check_public_key(key)
            except BadPublicKey as exc:
                raise BadGenesis(f"election {self.election_id}: trustee {i}: {exc.message}") from exc

    def is_open_at(self, time_ms: int) -> bool:
        return window_contains(self.opens_at_ms, self.closes_at_ms, time_ms)

    def _encrypted_items(self) -> list[Item]:
        contests: list[Item] = [c.item() for c in self.contests]
        if not self.has_ceremony:
            return [contests, self.joint_key]
        return [contests, self.joint_key, list(self.trustees), codec.int_bytes(self.threshold)]

    def to_json_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.election_id,
            "question": self.question,
            "choices": list(self.choices),
            "credential_root": self.credential_root.hex(),
            "credential_count": self.credential_count,
            "opens_at_ms": self.opens_at_ms,
            "closes_at_ms": self.closes_at_ms,
            "revoting": self.revoting,
            "payload_scheme": self.payload_scheme,
        }
        if self.encrypted:
            obj["contests"] = [c.to_json_obj() for c in self.contests]
            obj["joint_key"] = self.joint_key.hex()
        if self.has_ceremony:
            obj["trustees"] = [k.hex() for k in self.trustees]
            obj["threshold"] = self.threshold
        return obj

    def item(self) -> Item:
        return [
            self.election_id.encode(),
            self.question.encode(),
            [c.encode() for c in self.choices],
            self.credential_root,
            codec.int_bytes(self.credential_count),
            codec.int_bytes(self.opens_at_ms),
            codec.int_bytes(self.closes_at_ms),
            self.revoting.encode(),
            self.payload_scheme.encode(),
            # encrypted elections only, so every other election encodes as it always has
            *(self._encrypted_items() if self.encrypted else []),
        ]

    @classmethod
    def from_json_obj(cls, obj: Any, what: str = "election") -> ElectionDef:
        """A definition in its JSON form (a genesis election, or an election file's
        TOML read as a table); ``BadGenesis`` for anything wrong with it."""
        try:
            return _election_from_obj(obj, what)
        except LedgerError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadGenesis(f"{what} is malformed: {exc!r}") from exc

    def encode(self) -> bytes:
        """The canonical definition: what the registry's ``define_election`` carries."""
        return codec.encode(self.item())

    @classmethod
    def decode(cls, data: bytes) -> ElectionDef:
        """The inverse of :meth:`encode`; ``BadEncoding`` for anything not exactly the
        canonical encoding of a valid definition."""
        if len(data) > MAX_DEFINITION_BYTES:
            raise BadEncoding(f"election definition of {len(data)} bytes exceeds {MAX_DEFINITION_BYTES}")
        try:
            election = cls._from_item(codec.decode(data, max_size=MAX_DEFINITION_BYTES))
        except (BadGenesis, BadEncoding) as exc:
            raise BadEncoding(f"election definition: {exc.message}") from None
        except (ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            raise BadEncoding(f"election definition: {exc}") from None
        if election.encode() != data:
            raise BadEncoding("election definition: non-canonical encoding")
        return election

    @classmethod
    def _from_item(cls, item: Item) -> ElectionDef:
        f = codec.as_list(item, None, "election definition")
        if len(f) not in (9, 11, 13):
            raise BadEncoding(f"expected 9, 11 or 13 fields, got {len(f)}")

        def text(i: int, what: str, max_size: int = 1024) -> str:
            return codec.as_text(f[i], what, max_size=max_size)

        contests: tuple[Contest, ...] = ()
        joint_key = b""
        trustees: tuple[bytes, ...] = ()
        threshold = 0
        if len(f) >= 11:
            contests = tuple(_contest_from_item(c) for c in codec.as_list(f[9], None, "contests"))
            joint_key = codec.as_bytes(f[10], "joint key", max_size=64)
        if len(f) == 13:
            trustees = tuple(codec.as_bytes_list(f[11], "trustees", size=33, max_items=MAX_TRUSTEES))
            threshold = codec.as_int(f[12], "threshold")
        return cls(
            election_id=text(0, "election id", 64),
            question=text(1, "question", MAX_QUESTION_BYTES),
            choices=tuple(codec.as_text(c, "choice", max_size=MAX_CHOICE_BYTES)
                          for c in codec.as_list(f[2], None, "choices")),
            credential_root=codec.as_bytes(f[3], "credential root", size=HASH_SIZE),
            credential_count=codec.as_int(f[4], "credential count"),
            opens_at_ms=codec.as_int(f[5], "opens_at_ms"),
            closes_at_ms=codec.as_int(f[6], "closes_at_ms"),
            revoting=text(7, "revoting", 32),
            payload_scheme=text(8, "payload scheme", 64),
            contests=contests,
            joint_key=joint_key,
            trustees=trustees,
            threshold=threshold,
        )


def _contest_from_item(item: Item) -> Contest:
    f = codec.as_list(item, 3, "contest")
    return Contest(
        codec.as_text(f[0], "contest question", max_size=MAX_CONTEST_QUESTION_BYTES),
        tuple(codec.as_text(c, "choice", max_size=MAX_CHOICE_BYTES) for c in codec.as_list(f[1], None, "choices")),
        codec.as_int(f[2], "contest limit"),
    )


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    authority: bytes
    validators: ValidatorSet
    params: ChainParams
    elections: tuple[ElectionDef, ...]
    _elections: dict[str, ElectionDef] = field(init=False, repr=False, compare=False)
    _hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_identifier(self.chain_id, "chain id")
        _check_int(self.genesis_time_ms, "genesis_time_ms")
        if len(self.elections) > MAX_ELECTIONS:
            raise BadGenesis(f"more than {MAX_ELECTIONS} elections")
        try:
            check_public_key(self.authority)
            for v in self.validators.validators:
                check_public_key(v.public_key)
        except BadPublicKey as exc:
            raise BadGenesis(f"bad public key in genesis: {exc.message}") from exc
        by_id: dict[str, ElectionDef] = {}
        for e in self.elections:
            if e.as_defined() != e:
                raise BadGenesis(f"election {e.election_id}: its trustees' ceremony makes its key; define it without")
            if e.election_id in by_id:
                raise BadGenesis(f"duplicate election id {e.election_id}")
            by_id[e.election_id] = e
        object.__setattr__(self, "_elections", by_id)
        object.__setattr__(self, "_hash", tagged_hash(GENESIS_TAG, self.encode()))

    def election(self, election_id: str) -> ElectionDef | None:
        return self._elections.get(election_id)

    def hash(self) -> bytes:
        return self._hash

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.chain_id.encode(),
                codec.int_bytes(self.genesis_time_ms),
                self.authority,
                [v.item() for v in self.validators.validators],
                self.params.item(),
                [e.item() for e in self.elections],
            ]
        )

    # --- JSON (the file people read and publish) -------------------------------------
    def to_json_obj(self) -> dict[str, Any]:
        return {
            "format": "ballot-ledger/genesis/v1",
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "authority": self.authority.hex(),
            "validators": [
                {"name": v.name, "public_key": v.public_key.hex(), "power": v.power}
                for v in self.validators.validators
            ],
            "params": {
                "max_block_ballots": self.params.max_block_ballots,
                "max_ballot_bytes": self.params.max_ballot_bytes,
                "max_payload_bytes": self.params.max_payload_bytes,
                "max_proof_depth": self.params.max_proof_depth,
                "contracts": self.params.contracts,
            },
            "elections": [e.to_json_obj() for e in self.elections],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_obj(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, what: str = "genesis") -> Genesis:
        """Parse a genesis file: ``Oversized`` if larger than any genesis can be,
        ``TooDeep`` if nested deeper, ``BadGenesis`` for anything else wrong with it."""
        try:
            obj = jsonbound.loads(text, max_bytes=max_genesis_json_bytes(), max_depth=GENESIS_JSON_DEPTH, what=what)
        except (Oversized, TooDeep):
            raise
        except BadEncoding as exc:
            raise BadGenesis(exc.message) from None
        return cls.from_json_obj(obj)

    @classmethod
    def from_json_obj(cls, obj: Any) -> Genesis:
        try:
            return _genesis_from_obj(obj)
        except LedgerError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadGenesis(f"genesis JSON is malformed: {exc!r}") from exc


@cache
def max_genesis_json_bytes(validators: int = MAX_VALIDATORS, elections: int = MAX_ELECTIONS) -> int:
    """The size of the largest canonical genesis file with this many validators and
    elections (by default the ceilings): every other field at its ceiling, in the
    characters whose JSON escapes are longest. Each validator and each election adds the
    same number of bytes, so three small files give the size of any."""
    one = len(widest_genesis(1, 1).to_json())
    per_validator = len(widest_genesis(2, 1).to_json()) - one
    per_election = len(widest_genesis(1, 2).to_json()) - one
    return one + (validators - 1) * per_validator + (elections - 1) * per_election


def widest_genesis(validators: int, elections: int) -> Genesis:
    """A genesis whose every field is at its widest in canonical JSON."""
    widest = "\x01"  # one UTF-8 byte, six in JSON ("\u0001"): no character escapes longer per byte
    big = MAX_GENESIS_INT
    keys = [SigningKey.from_seed(f"widest-{i}".encode()).public_key for i in range(validators + 1)]
    return Genesis(
        chain_id="c" * 64,
        genesis_time_ms=big,
        authority=keys[0],
        validators=ValidatorSet(tuple(ValidatorInfo(widest * MAX_VALIDATOR_NAME_BYTES, k, big) for k in keys[1:])),
        params=ChainParams(big, big, big, big, contracts=False),  # "false" is longer than "true"
        elections=tuple(_widest_election(f"{i:064d}", widest, big, keys[0]) for i in range(elections)),
    )


def _widest_election(election_id: str, widest: str, big: int, key: bytes) -> ElectionDef:
    """The widest election in JSON: an encrypted one, whose contests each carry a question
    of their own, with every one of its choices in a contest of its own as far as the
    contest ceiling goes, and a ceremony of the most trustees (64 keys are wider than
    the one joint key they replace; a test holds it wider than the widest plaintext
    election)."""
    per_contest, extra = divmod(MAX_CHOICES, MAX_CONTESTS)
    sizes = [per_contest + (1 if i < extra else 0) for i in range(MAX_CONTESTS)]
    return ElectionDef(
        election_id=election_id, question=widest * MAX_QUESTION_BYTES, choices=(), credential_root=bytes(HASH_SIZE),
        credential_count=big, opens_at_ms=big - 1, closes_at_ms=big,
        revoting=max(REVOTING_POLICIES, key=len), payload_scheme=ENCRYPTED_SCHEME,
        contests=tuple(
            Contest(widest * MAX_CONTEST_QUESTION_BYTES, (widest * MAX_CHOICE_BYTES,) * n, n) for n in sizes
        ),
        trustees=_widest_trustees(key), threshold=MAX_TRUSTEES,
    )


@cache
def _widest_trustees(seed: bytes) -> tuple[bytes, ...]:
    return tuple(SigningKey.from_seed(seed + i.to_bytes(1, "big")).public_key for i in range(MAX_TRUSTEES))


_exact_keys = functools.partial(jsonfields.exact_keys, error=BadGenesis)
_int = functools.partial(jsonfields.as_int, error=BadGenesis)
_hex = functools.partial(jsonfields.as_hex, error=BadGenesis)
_list = functools.partial(jsonfields.as_list, error=BadGenesis)
_str = functools.partial(jsonfields.as_str, error=BadGenesis)


def _genesis_from_obj(obj: Any) -> Genesis:
    _exact_keys(
        obj,
        {"format", "chain_id", "genesis_time_ms", "authority", "validators", "params", "elections"},
        "genesis",
    )
    if obj["format"] != "ballot-ledger/genesis/v1":
        raise BadGenesis(f"unknown genesis format {obj['format']!r}")
    validators = []
    for i, v in enumerate(obj["validators"]):
        _exact_keys(v, {"name", "public_key", "power"}, f"validators[{i}]")
        validators.append(
            ValidatorInfo(_str(v["name"], "name"), _hex(v["public_key"], "public_key"), _int(v["power"], "power"))
        )
    p = obj["params"]
    _exact_keys(
        p, {"max_block_ballots", "max_ballot_bytes", "max_payload_bytes", "max_proof_depth", "contracts"}, "params"
    )
    if not isinstance(p["contracts"], bool):
        raise BadGenesis("params.contracts must be true or false")
    params = ChainParams(
        **{k: _int(val, k) for k, val in p.items() if k != "contracts"}, contracts=p["contracts"]
    )
    elections = [_election_from_obj(e, f"elections[{i}]") for i, e in enumerate(obj["elections"])]
    return Genesis(
        chain_id=_str(obj["chain_id"], "chain_id"),
        genesis_time_ms=_int(obj["genesis_time_ms"], "genesis_time_ms"),
        authority=_hex(obj["authority"], "authority"),
        validators=ValidatorSet(tuple(validators)),
        params=params,
        elections=tuple(elections),
    )


_ELECTION_KEYS = {"id", "question", "choices", "credential_root", "credential_count", "opens_at_ms",
                  "closes_at_ms", "revoting", "payload_scheme"}


def _election_from_obj(e: Any, what: str) -> ElectionDef:
    encrypted = isinstance(e, Mapping) and e.get("payload_scheme") == ENCRYPTED_SCHEME
    ceremony = encrypted and "trustees" in e
    _exact_keys(e, _ELECTION_KEYS | ({"contests", "joint_key"} if encrypted else set())
                | ({"trustees", "threshold"} if ceremony else set()), what)
    contests: tuple[Contest, ...] = ()
    if encrypted:
        for j, c in enumerate(_list(e["contests"], f"{what}.contests")):
            _exact_keys(c, {"question", "choices", "limit"}, f"{what}.contests[{j}]")
        contests = tuple(
            Contest(_str(c["question"], "question"),
                    tuple(_str(x, "choice") for x in _list(c["choices"], f"{what}.contests.choices")),
                    _int(c["limit"], "limit"))
            for c in e["contests"]
        )
    return ElectionDef(
        election_id=_str(e["id"], "id"),
        question=_str(e["question"], "question"),
        choices=tuple(_str(c, "choice") for c in _list(e["choices"], f"{what}.choices")),
        credential_root=_hex(e["credential_root"], "credential_root"),
        credential_count=_int(e["credential_count"], "credential_count"),
        opens_at_ms=_int(e["opens_at_ms"], "opens_at_ms"),
        closes_at_ms=_int(e["closes_at_ms"], "closes_at_ms"),
        revoting=_str(e["revoting"], "revoting"),
        payload_scheme=_str(e["payload_scheme"], "payload_scheme"),
        contests=contests,
        joint_key=(_hex(e["joint_key"], "joint_key") if e["joint_key"] else b"") if encrypted else b"",
        trustees=tuple(_hex(k, "trustee") for k in _list(e["trustees"], f"{what}.trustees")) if ceremony else (),
        threshold=_int(e["threshold"], "threshold") if ceremony else 0,
    )


def decode_hex_field(value: str, what: str) -> bytes:
    """Shared by the JSON wire forms: strict lower-case hex."""
    return jsonfields.as_hex(value, what)
