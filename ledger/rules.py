"""The chain's rules: one implementation, used by validators, sync and the verifier.

``check_ballot`` holds what can be checked of a ballot alone (cacheable by tracking
code: the expensive signature and credential proof run once per validator);
``apply_block`` checks a whole block against the tip and returns everything committing it
changes, without changing anything itself, so a refused block leaves no trace.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ledger import merkle
from ledger.ballot import BallotEnvelope, CredentialProof
from ledger.ballot_fast import HASH_ITEM_SIZE
from ledger.block import EMPTY_TXS_HASH, Block, last_commit_hash, transactions_hash
from ledger.crypto import is_valid_signature
from ledger.elections import ElectionLookup, Elections
from ledger.encrypted_ballot import BallotContext, ContestShape, verify_payload
from ledger.errors import (
    BadEncoding,
    BadHeight,
    BadInclusionProof,
    BadLastCommit,
    BadLogRoot,
    BadParent,
    BadProposer,
    BadSignature,
    BadStateRoot,
    BadTime,
    BadTransaction,
    BadValidatorSet,
    BlockTooLarge,
    DuplicateBallot,
    DuplicateCredential,
    ElectionNotOpen,
    LedgerError,
    NotInCredentialSet,
    Oversized,
    UnknownElection,
    WrongChain,
)
from ledger.genesis import PLAINTEXT_SCHEME, ElectionDef, Genesis, ValidatorSet
from ledger.state import ChainTip, ContractEngine, LedgerView, MissingContractEngine
from ledger.validators import ValidatorChange, ValidatorSchedule


class CheckedBallot(NamedTuple):
    """A ballot that passed check_ballot (immutable; a tuple because millions are made)."""

    envelope: BallotEnvelope
    tracking_code: bytes
    election: ElectionDef


class ProofCache:
    """Credential proofs already verified, per election (see merkle.VerifiedPaths).

    Optional everywhere; it changes how fast a proof is checked, never the answer.
    """

    def __init__(self) -> None:
        self._paths: dict[str, merkle.VerifiedPaths] = {}

    def verify(self, election: ElectionDef, credential: bytes, proof: CredentialProof) -> None:
        paths = self._paths.get(election.election_id)
        if paths is None or paths.root != election.credential_root:
            paths = merkle.VerifiedPaths(election.credential_count, election.credential_root)
            self._paths[election.election_id] = paths
        paths.verify_packed(credential, proof.index, proof.encoded_path, stride=HASH_ITEM_SIZE)


def check_admissible(
    genesis: Genesis,
    raw: bytes,
    time_ms: int,
    *,
    elections: Elections,
    proofs: ProofCache | None = None,
    known: CheckedBallot | None = None,
) -> CheckedBallot:
    """Is this ballot admissible in a block at ``time_ms``? The one answer, asked by block
    application, the mempool, the gateway and (through ``apply_block``) the verifier.

    In order: size and encoding, chain, election known, payload scheme
    (:func:`check_ballot_form`); credential proof and signature
    (:func:`check_ballot_credential`); the election open at ``time_ms``
    (:func:`check_open`). ``elections``: those defined on the state the block builds on,
    with their phases (``Elections``). ``known`` is this process's earlier
    :func:`check_ballot` result for the same bytes (what holds forever is not checked
    twice). Whether the ballot is new (:func:`check_unique`) depends on the chain and the
    block, and is asked separately.
    """
    checked = known if known is not None else check_ballot(genesis, raw, elections=elections, proofs=proofs)
    check_open(checked, time_ms, elections)
    return checked


def check_ballot(
    genesis: Genesis, raw: bytes, *, elections: ElectionLookup, proofs: ProofCache | None = None,
    form: CheckedBallot | None = None,
) -> CheckedBallot:
    """Everything about a ballot that does not depend on time or on other ballots.

    The result holds forever, so a validator checks each ballot once (at mempool
    admission) and hands the result to :func:`apply_block` as ``admitted``. ``form``:
    :func:`check_ballot_form`'s result for ``raw``, when the caller already has it;
    ``elections``: where definitions are found (a definition never changes once made).
    """
    return check_ballot_credential(genesis, form or check_ballot_form(genesis, raw, elections=elections),
                                   proofs=proofs)


def check_ballot_credential(
    genesis: Genesis, checked: CheckedBallot, *, proofs: ProofCache | None = None
) -> CheckedBallot:
    """The second part of :func:`check_ballot`: the credential proof and the signature
    (for callers that looked at the tracking code :func:`check_ballot_form` gave first)."""
    envelope, election = checked.envelope, checked.election
    if envelope.proof.depth > genesis.params.max_proof_depth:
        raise NotInCredentialSet("credential proof is deeper than the chain allows")
    try:
        if proofs is not None:
            proofs.verify(election, envelope.credential, envelope.proof)
        else:
            merkle.verify_inclusion(
                envelope.credential,
                envelope.proof.index,
                election.credential_count,
                envelope.proof.path,
                election.credential_root,
            )
    except BadInclusionProof as exc:
        raise NotInCredentialSet(
            f"credential is not in election {election.election_id}'s credential set: {exc.message}"
        ) from exc
    if not is_valid_signature(envelope.credential, envelope.digest(), envelope.signature):
        raise BadSignature("ballot signature does not verify under its credential")
    if election.encrypted:  # after the signature: a forged ballot costs no proof checks
        try:
            verify_payload(ballot_context(genesis.chain_id, election, envelope.credential), envelope.payload)
        except LedgerError as exc:
            raise exc.at("payload") from None
    return checked


def ballot_context(chain_id: str, election: ElectionDef, credential: bytes) -> BallotContext:
    """What an encrypted ballot's proofs are bound to: this chain, this election and its
    joint key, this credential, the election's contests."""
    return BallotContext(chain_id, election.election_id, election.joint_key, credential, _shapes(election))


@functools.lru_cache(maxsize=256)
def _shapes(election: ElectionDef) -> tuple[ContestShape, ...]:
    return tuple(ContestShape(len(c.choices), c.limit) for c in election.contests)


def check_ballot_form(genesis: Genesis, raw: bytes, *, elections: ElectionLookup) -> CheckedBallot:
    """The first part of :func:`check_ballot`: size, encoding, chain, election, payload.

    Its result may be used as checked only where the rest of ``check_ballot`` (credential
    proof and signature) has passed for the same bytes, e.g. in a worker process.
    """
    params = genesis.params
    if len(raw) > params.max_ballot_bytes:
        raise Oversized(f"ballot of {len(raw)} bytes exceeds the limit of {params.max_ballot_bytes}")
    envelope = BallotEnvelope.decode(raw, max_size=params.max_ballot_bytes)
    if envelope.chain_id != genesis.chain_id:
        raise WrongChain(f"ballot is for chain {envelope.chain_id!r}, not {genesis.chain_id!r}")
    election = elections.get(envelope.election_id)
    if election is None:
        raise UnknownElection(f"no election {envelope.election_id!r} on this chain")
    _check_payload(election, envelope.payload, params.max_payload_bytes)
    return CheckedBallot(envelope, envelope.tracking_code, election)


def _check_payload(election: ElectionDef, payload: bytes, max_payload: int) -> None:
    """The payload's form for its scheme (an encrypted payload's proofs are checked with
    the signature, in :func:`check_ballot_credential`)."""
    if election.payload_scheme == PLAINTEXT_SCHEME:
        if len(payload) != 1 or payload[0] >= len(election.choices):
            raise BadEncoding(
                f"payload must be one byte naming a choice below {len(election.choices)}"
            )
    elif not 1 <= len(payload) <= max_payload:
        raise Oversized(f"payload must be 1 to {max_payload} bytes")
    elif election.encrypted and not election.joint_key:
        raise ElectionNotOpen(f"election {election.election_id} has no key yet: its trustees' ceremony is not over")


def check_open(checked: CheckedBallot, time_ms: int, elections: Elections) -> None:
    """``Elections.is_open`` (window and phase), or ``ElectionNotOpen`` saying which way
    it is not."""
    election = checked.election
    if elections.is_open(election, time_ms):
        return
    if election.is_open_at(time_ms):
        raise ElectionNotOpen(f"election {election.election_id} is not in its open phase")
    state = "not yet open" if time_ms < election.opens_at_ms else "closed"
    raise ElectionNotOpen(f"election {election.election_id} is {state} at time {time_ms}")


def check_unique(
    checked: CheckedBallot,
    view: LedgerView,
    pending: Mapping[tuple[str, bytes], CheckedBallot],
    seen: Container[bytes],
) -> None:
    """No ballot twice in the log, and one counted ballot per credential.

    ``pending``: the ballots counting for each (election, credential) among those
    accepted since ``view`` (this block's so far); ``seen``: their tracking codes.
    Every recorded ballot's credential is in the counted index, so a credential with
    no history cannot have its ballot recorded: the tracking-code lookup is needed only
    for credentials already used, which keeps the common case to one index read.
    """
    code = checked.tracking_code
    if code in seen:
        raise DuplicateBallot("ballot is already in this block")
    election = checked.election
    key = (election.election_id, checked.envelope.credential)
    newer = pending.get(key)
    previous = newer.tracking_code if newer is not None else view.counted_ballot(*key)
    if previous is None:
        return
    if previous == code or view.has_ballot(code):
        raise DuplicateBallot("ballot is already in the log")
    if election.revoting == "first-counts":
        raise DuplicateCredential(f"credential already cast a ballot in election {election.election_id}")


@dataclass(frozen=True)
class BlockEffects:
    """Everything committing a block changes, for the store to write in one batch."""

    tip: ChainTip
    ballots: tuple[CheckedBallot, ...]
    first_log_index: int
    merkle_nodes: tuple[tuple[int, int, bytes], ...]
    # For each (election, credential) that cast a ballot in the block, the one that
    # counts after it (under first-counts, every ballot of the block).
    counted: tuple[CheckedBallot, ...]
    # Elections the block's transactions defined or gave their key (in definition order).
    defined: tuple[ElectionDef, ...] = ()


def apply_block(
    genesis: Genesis,
    tip: ChainTip,
    view: LedgerView,
    block: Block,
    *,
    admitted: Mapping[bytes, CheckedBallot] | None = None,
    proofs: ProofCache | None = None,
    engine: ContractEngine | None = None,
) -> BlockEffects:
    """Check ``block`` as the successor of ``tip``; return its effects or raise.

    ``admitted`` maps ballots (their exact bytes) to this process's earlier
    :func:`check_ballot` results, so signatures and proofs are not checked twice (keyed by
    the bytes themselves: a dict lookup costs less than hashing them again); everything that depends on
    the chain or the block's time is checked again here. Errors carry their location
    (``block H`` or ``block H ballot I``).
    """
    where = f"block {block.header.height}"
    contracts = genesis.params.contracts
    if contracts and engine is None:
        raise MissingContractEngine("this chain runs contracts: a contract engine is needed")
    try:
        _check_header(genesis, tip, block, validator_schedule(genesis, tip.state_root, engine))
        # With contracts, the registry says which elections exist and which are in
        # their open phase, as of the state after the parent block.
        elections = elections_at(genesis, tip.state_root, engine)
    except LedgerError as exc:
        raise exc.at(where) from None
    frontier = tip.frontier()
    first_index = frontier.size
    ballots = _apply_ballots(genesis, view, block, frontier, elections, admitted, proofs)
    try:
        defined = _check_roots(tip, block, frontier, ballots.checked, elections, engine if contracts else None)
    except LedgerError as exc:
        raise exc.at(where) from None
    header = block.header
    new_tip = ChainTip(
        chain_id=tip.chain_id,
        height=header.height,
        block_hash=header.hash(),
        time_ms=header.time_ms,
        state_root=header.state_root,
        log_frontier=frontier.to_bytes(),
    )
    return BlockEffects(new_tip, ballots.checked, first_index, ballots.nodes, ballots.counted, defined)


def elections_at(genesis: Genesis, state_root: bytes, engine: ContractEngine | None) -> Elections:
    """The elections a block building on ``state_root`` may carry ballots of: the
    registry's on a chain with contracts, the genesis's otherwise."""
    if not genesis.params.contracts:
        return Elections.of_genesis(genesis)
    if engine is None:
        raise MissingContractEngine("this chain runs contracts: a contract engine is needed")
    return engine.elections(state_root)


def validator_schedule(genesis: Genesis, state_root: bytes, engine: ContractEngine | None) -> ValidatorSchedule:
    """The validator sets as the state ``state_root`` knows them: after block ``h``'s
    state, right for every height up to ``h + VALIDATOR_CHANGE_DELAY`` (ledger.validators).
    Genesis's set throughout on a chain without contracts."""
    if not genesis.params.contracts:
        return ValidatorSchedule(genesis.validators)
    if engine is None:
        raise MissingContractEngine("this chain runs contracts: a contract engine is needed")
    return _schedule(genesis.validators, engine.validator_changes(state_root))


@functools.lru_cache(maxsize=16)
def _schedule(genesis_set: ValidatorSet, changes: tuple[ValidatorChange, ...]) -> ValidatorSchedule:
    return ValidatorSchedule.build(genesis_set, changes)


def validators_at(genesis: Genesis, state_root: bytes, engine: ContractEngine | None, height: int) -> ValidatorSet:
    """The set in force at ``height``, read from the state of any block from
    ``height - VALIDATOR_CHANGE_DELAY`` on (usually the parent of block ``height``)."""
    return validator_schedule(genesis, state_root, engine).at(height)


class _BlockBallots(NamedTuple):
    checked: tuple[CheckedBallot, ...]
    nodes: tuple[tuple[int, int, bytes], ...]
    counted: tuple[CheckedBallot, ...]


def _apply_ballots(
    genesis: Genesis,
    view: LedgerView,
    block: Block,
    frontier: merkle.MerkleFrontier,
    elections: Elections,
    admitted: Mapping[bytes, CheckedBallot] | None,
    proofs: ProofCache | None,
) -> _BlockBallots:
    """Each ballot of ``block`` admissible and new, in order, appended to ``frontier``."""
    where = f"block {block.header.height}"
    time_ms = block.header.time_ms
    append_leaf = frontier.append
    take_admitted = admitted.get if admitted is not None else None
    checked_list: list[CheckedBallot] = []
    nodes: list[tuple[int, int, bytes]] = []
    pending: dict[tuple[str, bytes], CheckedBallot] = {}
    seen: set[bytes] = set()
    # The hot loop of every validator and of the verifier: locals only.
    for i, raw in enumerate(block.ballots):
        try:
            checked = check_admissible(
                genesis, raw, time_ms, elections=elections, proofs=proofs,
                known=take_admitted(raw) if take_admitted is not None else None,
            )
            check_unique(checked, view, pending, seen)
        except LedgerError as exc:
            raise exc.at(f"{where} ballot {i}") from None
        code = checked.tracking_code
        seen.add(code)
        pending[(checked.election.election_id, checked.envelope.credential)] = checked
        checked_list.append(checked)
        nodes.extend(append_leaf(merkle.leaf_hash(code)))
    return _BlockBallots(tuple(checked_list), tuple(nodes), tuple(pending.values()))


def _check_roots(
    tip: ChainTip,
    block: Block,
    frontier: merkle.MerkleFrontier,
    checked: tuple[CheckedBallot, ...],
    elections: Elections,
    engine: ContractEngine | None,
) -> tuple[ElectionDef, ...]:
    """The header's log size and root, and its state root after executing the block's
    transactions and its checkpoint (``engine``: None on a chain without contracts);
    answers the elections the transactions defined."""
    header = block.header
    if header.log_size != frontier.size:
        raise BadLogRoot(f"header says log size {header.log_size}, ballots make {frontier.size}")
    if header.log_root != frontier.root():
        raise BadLogRoot("header's log root is not the root after appending this block's ballots")
    if engine is None:
        return ()  # _check_header held the state root to the parent's
    state_root = engine.execute_block(
        tip.state_root, header.height, header.time_ms, block.transactions,
        (frontier.size, frontier.root(), elections.ballot_counts(c.election.election_id for c in checked)),
    ).state_root
    if header.state_root != state_root:
        raise BadStateRoot("header's state root is not the state after this block's execution")
    return engine.elections(state_root).changed_since(elections) if block.transactions else ()


def check_block_ballots(
    genesis: Genesis, raw_block: bytes, *, elections: ElectionLookup, proofs: ProofCache | None = None
) -> bytes:
    """One byte per ballot of an encoded block: 1 if ``check_ballot`` passed, else 0.

    For worker processes that check signatures and proofs ahead of the in-order
    ``apply_block`` (replay with --jobs, block sync); a block that does not decode gives
    no flags, and whoever applies it in order reports why.
    """
    try:
        ballots = Block.decode(raw_block).ballots
    except LedgerError:
        return b""
    out = bytearray(len(ballots))
    for i, raw in enumerate(ballots):
        try:
            check_ballot(genesis, raw, elections=elections, proofs=proofs)
            out[i] = 1
        except LedgerError:
            pass
    return bytes(out)


def admitted_from_flags(
    genesis: Genesis, raw_block: bytes, flags: bytes, *, elections: ElectionLookup
) -> dict[bytes, CheckedBallot]:
    """The ``admitted`` mapping for a block whose ballots ``check_block_ballots`` flagged."""
    try:
        ballots = Block.decode(raw_block).ballots
    except LedgerError:
        return {}
    admitted: dict[bytes, CheckedBallot] = {}
    for raw, ok in zip(ballots, flags, strict=False):
        if ok:
            # A full pass implies the form passes; if not, apply_block will say why.
            with contextlib.suppress(LedgerError):
                checked = check_ballot_form(genesis, raw, elections=elections)
                admitted[raw] = checked
    return admitted


def check_header(genesis: Genesis, tip: ChainTip, block: Block, schedule: ValidatorSchedule) -> None:
    """A block's header (and the certificate it carries) on ``tip``, under the validator
    sets ``schedule`` gives: what checking a stored chain without replaying its ballots
    needs (a restored backup, node.backup)."""
    _check_header(genesis, tip, block, schedule)


def _check_header(genesis: Genesis, tip: ChainTip, block: Block, schedule: ValidatorSchedule) -> None:
    header = block.header
    if header.chain_id != genesis.chain_id:
        raise WrongChain(f"block is for chain {header.chain_id!r}, not {genesis.chain_id!r}")
    if header.height != tip.height + 1:
        raise BadHeight(f"expected height {tip.height + 1}, got {header.height}")
    if header.parent_hash != tip.block_hash:
        raise BadParent(f"parent hash {header.parent_hash.hex()[:16]} is not the tip {tip.block_hash.hex()[:16]}")
    if header.time_ms <= tip.time_ms:
        raise BadTime(f"block time {header.time_ms} is not after its parent's {tip.time_ms}")
    validators = schedule.at(header.height)
    if validators.index_of(header.proposer) is None:
        raise BadProposer("proposer is not in the validator set")
    if header.validator_set_hash != validators.hash():
        raise BadValidatorSet("header's validator set hash does not match the set in force")
    if len(block.ballots) > genesis.params.max_block_ballots:
        raise BlockTooLarge(
            f"{len(block.ballots)} ballots exceeds the limit of {genesis.params.max_block_ballots}"
        )
    if genesis.params.contracts:
        if header.txs_hash != transactions_hash(block.transactions):
            raise BadTransaction("header's transactions hash does not match the block's transactions")
    else:  # a chain without contracts has no transactions and no state to change
        if block.transactions or header.txs_hash != EMPTY_TXS_HASH:
            raise BadTransaction("transactions are not enabled on this chain")
        if header.state_root != tip.state_root:
            raise BadStateRoot("state root changed on a chain without contracts")
    if header.height == 1:
        if block.last_commit is not None or header.last_commit_hash != last_commit_hash(None):
            raise BadLastCommit("the first block carries no last commit")
        return
    if block.last_commit is None:
        raise BadLastCommit(f"block must carry the certificate of block {tip.height}")
    if header.last_commit_hash != block.last_commit.hash():
        raise BadLastCommit("header's last commit hash does not match the carried certificate")
    try:
        # The parent's certificate, by the set in force at the parent's height.
        block.last_commit.check(
            schedule.at(tip.height), chain_id=genesis.chain_id, height=tip.height, block_hash=tip.block_hash
        )
    except LedgerError as exc:
        raise exc.at(f"last commit (certificate of block {tip.height})") from None
