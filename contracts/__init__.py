"""The chain's contracts: their compiled artifacts and a thin, typed call codec.

The Vyper sources sit beside this file; ``contracts/artifacts/NAME.json`` holds each
one's ABI and bytecode exactly as the pinned compiler produces them (``python -m
contracts.build`` rewrites them; a test recompiles and compares byte for byte). Nothing
here needs the compiler: nodes and the verifier only load the JSON.

Identifiers on the EVM side:

- an election's id is ``election_key(id) = keccak256(utf8(id))`` (genesis ids are
  strings of up to 64 characters, too long for a ``bytes32``);
- its question hash is ``keccak256(rlp([question, [choices...], payload_scheme]))``;
- phases are :class:`Phase`; re-voting is 0 for first-counts and 1 for last-counts.

Refusals come back from the contract as revert reasons that are ledger error codes;
:func:`revert_error` turns them into the exceptions below.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError

from ledger import codec
from ledger.crypto import address_of
from ledger.errors import BadTransaction, LedgerError, UnknownElection
from ledger.genesis import ElectionDef, ValidatorInfo
from ledger.hashing import keccak256
from ledger.validators import ValidatorChange

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
REGISTRY = "ElectionRegistry"
NAIVE_BALLOT_BOX = "NaiveBallotBox"

#: Where the registry lives in every chain's genesis state.
REGISTRY_ADDRESS = bytes.fromhex("00000000000000000000000000000000000ba110")
#: The sender of the per-block checkpoint call (the EIP-4788 system address); no key exists.
SYSTEM_ADDRESS = bytes.fromhex("ff" * 19 + "fe")
ZERO_ADDRESS = b"\x00" * 20

REVOTING_CODES = {"first-counts": 0, "last-counts": 1}


class Phase(IntEnum):
    NONE = 0  # no such election
    SETUP = 1
    OPEN = 2
    CLOSED = 3
    TALLIED = 4


# --- errors ---------------------------------------------------------------------------
class ContractError(LedgerError):
    """The EVM side refused something."""

    code = "contract_error"


class EvmError(ContractError):
    """Execution failed for a reason other than a contract's own refusal (out of gas,
    invalid opcode, unknown state root, a system call that must not fail)."""

    code = "evm_error"


class UnknownStateRoot(EvmError):
    code = "unknown_state_root"


class ContractRevert(ContractError):
    """A contract reverted; subclasses name the reasons the registry gives."""

    code = "contract_revert"


class NotAuthority(ContractRevert):
    code = "not_authority"


class NotSystem(ContractRevert):
    code = "not_system"


class WrongPhase(ContractRevert):
    code = "wrong_phase"


class ElectionUnknown(ContractRevert, UnknownElection):
    code = "unknown_election"


class ElectionExists(ContractRevert):
    code = "election_exists"


class BadDefinition(ContractRevert):
    code = "bad_definition"


class BadResult(ContractRevert):
    code = "bad_result"


class BadCheckpoint(ContractRevert):
    code = "bad_checkpoint"


class NotTrustee(ContractRevert):
    code = "not_trustee"


class AlreadyPosted(ContractRevert):
    code = "already_posted"


class NoDealing(ContractRevert):
    code = "no_dealing"


class CeremonyRefused(ContractRevert):
    """The ceremony is not complete (open before the key, or a key set from the wrong
    qualified dealers or too few of them)."""

    code = "bad_ceremony"


class ValidatorChangeRefused(ContractRevert):
    code = "bad_validator_change"


class InvalidTransaction(BadTransaction):
    """A transaction that makes its block invalid: undecodable, non-canonical, wrong
    chain id, bad nonce, over the gas limit, or not signed by the authority."""

    code = "invalid_transaction"


class InvalidDefinition(InvalidTransaction):
    """A ``define_election`` call whose definition does not decode, or whose other
    arguments are not exactly the ones its definition gives."""

    code = "bad_definition"


class InvalidValidatorChange(InvalidTransaction):
    """A ``change_validators`` call the set's rules refuse (ledger.validators)."""

    code = "bad_validator_change"


class NotAuthoritySender(InvalidTransaction):
    """A block carries a transaction whose signer is not the election authority."""

    code = "not_authority"


_REVERTS: dict[str, type[ContractRevert]] = {
    cls.code: cls
    for cls in (NotAuthority, NotSystem, WrongPhase, ElectionUnknown, ElectionExists, BadDefinition,
                BadResult, BadCheckpoint, NotTrustee, AlreadyPosted, NoDealing, CeremonyRefused,
                ValidatorChangeRefused)
}
_ERROR_SELECTOR = keccak256(b"Error(string)")[:4]


def revert_reason(output: bytes) -> str | None:
    """The string of a Solidity/Vyper ``Error(string)`` revert payload, if it is one."""
    if output[:4] != _ERROR_SELECTOR:
        return None
    try:
        (reason,) = abi_decode(["string"], output[4:])
    except (DecodingError, ValueError, OverflowError):
        return None
    return str(reason)


def revert_error(output: bytes, what: str) -> ContractRevert:
    """The exception for a revert payload; unknown reasons give a plain ContractRevert."""
    reason = revert_reason(output)
    if reason is None:
        return ContractRevert(f"{what}: reverted without a reason ({output[:68].hex() or 'no data'})")
    return _REVERTS.get(reason, ContractRevert)(f"{what}: reverted with {reason!r}")


# --- artifacts ------------------------------------------------------------------------
@dataclass(frozen=True)
class Artifact:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes  # init code (constructor arguments go after it)
    bytecode_runtime: bytes
    compiler: str


@cache
def load_artifact(name: str) -> Artifact:
    obj = json.loads((ARTIFACTS / f"{name}.json").read_text())
    return Artifact(
        name=obj["contract_name"],
        abi=tuple(obj["abi"]),
        bytecode=bytes.fromhex(obj["bytecode"].removeprefix("0x")),
        bytecode_runtime=bytes.fromhex(obj["bytecode_runtime"].removeprefix("0x")),
        compiler=obj["compiler"],
    )


def _abi_type(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + t[len("tuple"):]
    return t


@dataclass(frozen=True)
class AbiFunction:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> bytes:
        return keccak256(self.signature.encode())[:4]

    def encode(self, *args: Any) -> bytes:
        return self.selector + abi_encode(list(self.inputs), list(args))

    def decode(self, output: bytes) -> tuple[Any, ...]:
        try:
            return tuple(abi_decode(list(self.outputs), output, strict=True))
        except (DecodingError, ValueError, OverflowError) as exc:
            raise EvmError(f"{self.name}: undecodable return data: {exc}") from exc


@dataclass(frozen=True)
class AbiEvent:
    name: str
    topic: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, type)
    data: tuple[tuple[str, str], ...]

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        if not topics or topics[0] != self.topic or len(topics) != 1 + len(self.indexed):
            raise EvmError(f"log is not a {self.name} event")
        out: dict[str, Any] = {}
        for (name, typ), topic in zip(self.indexed, topics[1:], strict=True):
            out[name] = abi_decode([typ], topic)[0]
        values = abi_decode([t for _, t in self.data], data)
        out.update({name: v for (name, _), v in zip(self.data, values, strict=True)})
        return out


class Contract:
    """Call codec for one artifact's ABI: ``c.fn("phase").encode(key)`` and friends."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.functions: dict[str, AbiFunction] = {}
        self.events: dict[str, AbiEvent] = {}
        for entry in artifact.abi:
            if entry.get("type") == "function":
                self.functions[entry["name"]] = AbiFunction(
                    entry["name"],
                    tuple(_abi_type(p) for p in entry["inputs"]),
                    tuple(_abi_type(p) for p in entry["outputs"]),
                )
            elif entry.get("type") == "event":
                sig = f"{entry['name']}({','.join(_abi_type(p) for p in entry['inputs'])})"
                self.events[entry["name"]] = AbiEvent(
                    entry["name"],
                    keccak256(sig.encode()),
                    tuple((p["name"], _abi_type(p)) for p in entry["inputs"] if p["indexed"]),
                    tuple((p["name"], _abi_type(p)) for p in entry["inputs"] if not p["indexed"]),
                )
        self._by_topic = {e.topic: e for e in self.events.values()}

    def fn(self, name: str) -> AbiFunction:
        return self.functions[name]

    def decode_log(self, topics: Sequence[bytes], data: bytes) -> tuple[str, dict[str, Any]] | None:
        """(event name, fields) for a log this ABI knows, else None."""
        event = self._by_topic.get(topics[0]) if topics else None
        if event is None:
            return None
        return event.name, event.decode(topics, data)


# --- the election registry --------------------------------------------------------------
def election_key(election_id: str) -> bytes:
    """The registry's bytes32 id of a ledger election id."""
    return keccak256(election_id.encode())


def question_hash(election: ElectionDef) -> bytes:
    """keccak256 of what voters are asked: question, choices and payload scheme (and for
    an encrypted election its contests and joint key)."""
    items: list[codec.Item] = [election.question.encode(), [c.encode() for c in election.choices],
                               election.payload_scheme.encode()]
    if election.encrypted:
        items += [[c.item() for c in election.contests], election.joint_key]
    return keccak256(codec.encode(items))


def choice_count(election: ElectionDef) -> int:
    """How many counts a published result has: one per choice (of every contest)."""
    return sum(len(c.choices) for c in election.contests) if election.encrypted else len(election.choices)


def trustees_key_hash(election: ElectionDef) -> bytes:
    """keccak256 of an encrypted election's joint key; zero for any other election."""
    return keccak256(election.joint_key) if election.encrypted else b"\x00" * 32


@dataclass(frozen=True)
class ElectionRecord:
    """What the registry holds about one election (its ``election`` view)."""

    question_hash: bytes
    choice_count: int
    opens_at_ms: int
    closes_at_ms: int
    credential_root: bytes
    credential_count: int
    trustees_key_hash: bytes
    revoting: int
    phase: Phase
    ballots: int
    definition_hash: bytes
    threshold: int


class Registry(Contract):
    """Encoders for every registry call, decoders for its views."""

    def __init__(self) -> None:
        super().__init__(load_artifact(REGISTRY))
        trustee_calls = ("post_dealing", "post_complaint", "post_decryption_share")
        self._trustee_selectors = frozenset(self.fn(n).selector for n in trustee_calls)
        self._ceremony_selectors = {self.fn(n).selector: n for n in (*trustee_calls, "set_joint_key")}

    def constructor_args(self, authority: bytes) -> bytes:
        return abi_encode(["address"], [authority])

    def init_code(self, authority: bytes) -> bytes:
        return self.artifact.bytecode + self.constructor_args(authority)

    # authority transactions (the calldata; see node.evm.sign_transaction to sign)
    def define_election(
        self,
        election: ElectionDef,
        *,
        gateways: Sequence[bytes] = (),
    ) -> bytes:
        """The call that defines ``election`` (in its defined, keyless form); its every
        argument but the gateways follows from the definition."""
        election = election.as_defined()
        return self.fn("define_election").encode(
            election_key(election.election_id),
            question_hash(election),
            choice_count(election),
            election.opens_at_ms,
            election.closes_at_ms,
            election.credential_root,
            election.credential_count,
            trustees_key_hash(election),
            list(gateways),
            REVOTING_CODES[election.revoting],
            election.encode(),
            ["0x" + address_of(k).hex() for k in election.trustees],
            election.threshold,
        )

    def define_call_definition(self, data: bytes) -> tuple[bytes, tuple[bytes, ...]] | None:
        """The definition and gateways a ``define_election`` call carries; None for any
        other calldata. Raises BadDefinition for a define call that does not decode."""
        fn = self.fn("define_election")
        if data[:4] != fn.selector:
            return None
        try:
            args = abi_decode(list(fn.inputs), data[4:], strict=True)
        except (DecodingError, ValueError, OverflowError) as exc:
            raise BadDefinition(f"define_election: undecodable arguments: {exc}") from None
        return bytes(args[10]), tuple(bytes(g) for g in args[8])

    def set_trustees_key(self, election_id: str, trustees_key_hash: bytes) -> bytes:
        return self.fn("set_trustees_key").encode(election_key(election_id), trustees_key_hash)

    def set_gateway(self, election_id: str, key_hash: bytes, authorised: bool) -> bytes:
        return self.fn("set_gateway").encode(election_key(election_id), key_hash, authorised)

    def open_election(self, election_id: str) -> bytes:
        return self.fn("open_election").encode(election_key(election_id))

    def close_election(self, election_id: str) -> bytes:
        return self.fn("close_election").encode(election_key(election_id))

    def publish_result(self, election_id: str, counts: Sequence[int]) -> bytes:
        return self.fn("publish_result").encode(election_key(election_id), list(counts))

    # validator set changes (ledger.validators)
    def change_validators(self, removed: bytes, added: ValidatorInfo | None) -> bytes:
        """Remove ``removed`` (or b""), add ``added`` (or None); both: a replacement."""
        if added is None:
            return self.fn("change_validators").encode(removed, b"", "", 0)
        return self.fn("change_validators").encode(removed, added.public_key, added.name, added.power)

    def validator_change_call(self, data: bytes, height: int) -> ValidatorChange | None:
        """The change a ``change_validators`` call in block ``height`` makes; None for any
        other call, or one whose arguments do not decode (the registry reverts it)."""
        fn = self.fn("change_validators")
        if data[:4] != fn.selector:
            return None
        try:
            removed, added, name, power = abi_decode(list(fn.inputs), data[4:], strict=True)
        except (DecodingError, ValueError, OverflowError):
            return None
        return _change(height, bytes(removed), bytes(added), str(name), int(power))

    def decode_validator_change(self, output: bytes) -> ValidatorChange:
        (t,) = self.fn("validator_change").decode(output)
        return _change(int(t[0]), bytes(t[1]), bytes(t[2]), str(t[3]), int(t[4]))

    # the system call
    def checkpoint(self, height: int, log_size: int, log_root: bytes, ballots: Sequence[tuple[str, int]]) -> bytes:
        return self.fn("checkpoint").encode(
            height, log_size, log_root, [election_key(e) for e, _ in ballots], [n for _, n in ballots]
        )

    # views
    def decode_election(self, output: bytes) -> ElectionRecord:
        (t,) = self.fn("election").decode(output)
        return ElectionRecord(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], Phase(t[8]), t[9], t[10], t[11])

    def decode_summary(self, output: bytes) -> tuple[tuple[bytes, Phase, bytes, bytes], ...]:
        """``elections_summary``: (election key, phase, definition hash, joint key set by
        a ceremony or empty) in definition order."""
        (rows,) = self.fn("elections_summary").decode(output)
        return tuple((bytes(k), Phase(p), bytes(h), bytes(j)) for k, p, h, j in rows)

    # the trustees' transactions
    def post_dealing(self, election_id: str, dealing: bytes) -> bytes:
        return self.fn("post_dealing").encode(election_key(election_id), dealing)

    def post_complaint(self, election_id: str, dealer: int, complaint: bytes) -> bytes:
        return self.fn("post_complaint").encode(election_key(election_id), dealer, complaint)

    def set_joint_key(self, election_id: str, joint_key: bytes, qualified: Sequence[int]) -> bytes:
        return self.fn("set_joint_key").encode(election_key(election_id), joint_key, list(qualified))

    def post_decryption_share(self, election_id: str, share: bytes) -> bytes:
        return self.fn("post_decryption_share").encode(election_key(election_id), share)

    def is_trustee_call(self, to: bytes, data: bytes) -> bool:
        """Whether a transaction from someone other than the authority may be in a block:
        a call of the registry that trustees make (the registry checks who is a trustee)."""
        return to == REGISTRY_ADDRESS and data[:4] in self._trustee_selectors

    def ceremony_call(self, data: bytes) -> tuple[str, bytes, tuple[Any, ...]] | None:
        """(name, election key, the other arguments) of a ceremony call; None for any
        other call, or one whose arguments do not decode (the registry reverts it)."""
        name = self._ceremony_selectors.get(data[:4])
        if name is None:
            return None
        fn = self.fn(name)
        try:
            args = abi_decode(list(fn.inputs), data[4:], strict=True)
        except (DecodingError, ValueError, OverflowError):
            return None
        return name, bytes(args[0]), tuple(args[1:])

    def decode_ceremony(self, output: bytes) -> tuple[tuple[bytes, ...], tuple[bool, ...], tuple[bytes, ...]]:
        """``ceremony``: per trustee, its dealing's hash, whether it is disqualified, its
        decryption share's hash (zero hashes where nothing was posted)."""
        dealt, out, shares = self.fn("ceremony").decode(output)
        return tuple(bytes(h) for h in dealt), tuple(bool(x) for x in out), tuple(bytes(h) for h in shares)


def _change(height: int, removed: bytes, added: bytes, name: str, power: int) -> ValidatorChange:
    return ValidatorChange(height, removed, ValidatorInfo(name, added, power) if added else None)


@cache
def registry() -> Registry:
    return Registry()
