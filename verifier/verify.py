"""``ballotledger verify``: check a bundle and report, for people and for machines."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts import REGISTRY_ADDRESS, load_artifact
from contracts.ceremony import ceremony_context
from ledger import jsonbound
from ledger.encrypted_tally import EncryptedTally
from ledger.errors import BadEncoding, BadGenesis, LedgerError, Oversized, TooDeep
from ledger.files import read_bounded
from ledger.genesis import Genesis
from ledger.result_check import check_result
from ledger.tally import Tally
from ledger.tally_crypto import DecryptionShare, TallyContext
from verifier.bundle import (
    BUNDLE_README,
    README_FILE,
    REGISTRY_ARTIFACT_FILE,
    RESULTS_FILE,
    MissingFile,
    NonCanonical,
    UnusableBundle,
    bundle_files,
    iter_block_lines,
    read_genesis,
    registry_artifact_bytes,
    unreadable,
)
from verifier.index import DiskIndex
from verifier.replay import ReplayResult, replay, resume_point, saved_progress

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2
# results object > "elections" > an election > "tally": the deepest results.json nests
RESULTS_JSON_DEPTH = 4
_WIDEST_COUNT = 2**64 - 1


@dataclass
class Report:
    valid: bool
    exit_code: int
    genesis_hash: str | None = None
    chain_id: str | None = None
    blocks: int = 0
    ballots: int = 0
    tip_height: int = 0
    log_size: int = 0
    log_root: str | None = None
    seconds: float = 0.0
    failure: dict[str, Any] | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    sums_seconds: float = 0.0
    # election id -> the homomorphic sums of its counted ballots (only their digests are
    # in the JSON; ``ballotledger tally sums`` writes them out)
    encrypted_sums: dict[str, EncryptedTally] = field(default_factory=dict)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "genesis_hash": self.genesis_hash,
            "chain_id": self.chain_id,
            "blocks": self.blocks,
            "ballots": self.ballots,
            "tip_height": self.tip_height,
            "log_size": self.log_size,
            "log_root": self.log_root,
            "seconds": round(self.seconds, 3),
            "encrypted_sums_seconds": round(self.sums_seconds, 3),
            "failure": self.failure,
            "results": self.results,
        }


def verify_bundle(
    directory: Path,
    *,
    pin_genesis: str | None = None,
    on_block: Any = None,
    jobs: int = 1,
    state_dir: Path | None = None,
) -> Report:
    """Verify a bundle. ``state_dir``: keep the replay's state there, resuming from what an
    earlier run saved (an interrupted run, or a bundle that has grown since)."""
    started = time.perf_counter()
    checked = _preflight(directory, pin_genesis)
    if isinstance(checked, Report):
        return checked
    genesis, report = checked
    try:
        result = _replay_bundle(directory, genesis, on_block=on_block, jobs=jobs, state_dir=state_dir)
        try:
            report.failure = _after_replay(directory, genesis, result)
        finally:  # after the checks, which may verify published encrypted results
            _fill(report, result)
    except UnusableBundle as exc:
        report.exit_code = EXIT_UNUSABLE
        report.failure = _failure(exc)
        return report
    except LedgerError as exc:
        report.failure = _failure(exc)
    report.seconds = time.perf_counter() - started
    if report.failure is None:
        report.valid = True
        report.exit_code = EXIT_VALID
    return report


def _preflight(directory: Path, pin_genesis: str | None) -> tuple[Genesis, Report] | Report:
    """The genesis, README and contract artifact, and the pin: a final report if one of
    them fails, else the genesis and the report the replay fills in."""
    try:
        genesis = read_genesis(directory)
    except NonCanonical as exc:
        return Report(False, EXIT_INVALID, failure=_failure(exc))
    except (UnusableBundle, BadGenesis) as exc:
        return Report(False, EXIT_UNUSABLE, failure=_failure(exc))
    try:
        readme = _read_exact_file(directory, README_FILE, BUNDLE_README.encode())
        artifact = _artifact_mismatch(directory, genesis)
    except UnusableBundle as exc:
        return Report(False, EXIT_UNUSABLE, failure=_failure(exc))
    if readme is not None:
        return Report(False, EXIT_INVALID, failure={
            "check": "non_canonical", "where": README_FILE, "message": "README differs from the format description"})
    if artifact is not None:
        return Report(False, EXIT_INVALID, failure=artifact)
    report = Report(False, EXIT_INVALID, genesis_hash=genesis.hash().hex(), chain_id=genesis.chain_id)
    if pin_genesis is not None and pin_genesis.lower().removeprefix("0x") != genesis.hash().hex():
        report.failure = {
            "check": "genesis_pin",
            "where": "genesis.json",
            "message": f"genesis hash {genesis.hash().hex()} is not the pinned {pin_genesis}",
        }
        return report
    return genesis, report


def _replay_bundle(
    directory: Path, genesis: Genesis, *, on_block: Any, jobs: int, state_dir: Path | None
) -> ReplayResult:
    if state_dir is None:
        return replay(genesis, iter_block_lines(directory, genesis=genesis), on_block=on_block, jobs=jobs)
    index = DiskIndex(genesis, keep_at=state_dir)
    try:
        saved = saved_progress(index, genesis)
    except LedgerError:
        index.close()
        raise
    point = resume_point(saved) if saved is not None else None
    lines = iter_block_lines(directory, genesis=genesis, resume=point, track_prefix=True)
    return replay(genesis, lines, on_block=on_block, jobs=jobs, index=index, saved=saved)


def _after_replay(directory: Path, genesis: Genesis, result: ReplayResult) -> dict[str, Any] | None:
    """What is checked once every block is: the registry's code and results on chain, the
    published results file, and that no covered file is missing; the first failure."""
    onchain = (_check_registry_code(result) or _check_registry_results(result)
               or _check_encrypted_results(result, genesis.chain_id))
    if onchain is not None:
        return onchain
    claim = _published_results(directory, genesis, result.tally)
    if claim is not None:
        mismatch = _compare_results(claim, result.tally.to_json_obj())
        if mismatch is not None:
            return {"check": "published_result", "where": RESULTS_FILE, "message": mismatch}
    # Checked last, so that a bundle that export is still writing is replayed (and with a
    # state, saved) as far as it goes, and then reported incomplete.
    missing = [name for name in bundle_files(genesis) if not (directory / name).is_file()]
    if missing:
        return _failure(MissingFile(
            f"the bundle lacks {', '.join(missing)}: every file of a bundle is covered, so none may be missing",
            where=", ".join(missing)))
    return None


def _published_results(directory: Path, genesis: Genesis, tally: Tally) -> Any:
    path = directory / RESULTS_FILE
    if not path.exists():
        return None
    limit = max_results_bytes(genesis, tally)
    try:
        raw = read_bounded(path, limit, what=RESULTS_FILE)
        obj = jsonbound.loads(raw, max_bytes=limit, max_depth=RESULTS_JSON_DEPTH, what=RESULTS_FILE)
    except (Oversized, TooDeep) as exc:
        raise unreadable(exc, RESULTS_FILE) from None
    except BadEncoding as exc:
        raise UnusableBundle(f"results.json is not JSON: {exc.message}", where=RESULTS_FILE) from None
    except OSError as exc:
        raise UnusableBundle(f"cannot read {path}: {exc.strerror}", where=RESULTS_FILE) from None
    if raw != results_text(obj).encode():
        return {"format": "non-canonical"}  # reported as a published_result failure
    return obj


def max_results_bytes(genesis: Genesis, tally: Tally | None = None) -> int:
    """The longest results.json this chain can have: its elections (``tally``'s, which the
    replay found, those defined after genesis included) and choices, with the height and
    every count at 20 digits (2**64, more than any chain records)."""
    obj = (tally or Tally(genesis)).to_json_obj()
    obj["height"] = _WIDEST_COUNT
    for election in obj["elections"].values():
        for key in election:
            election[key] = dict.fromkeys(election[key], _WIDEST_COUNT) if key == "tally" else _WIDEST_COUNT
    return len(results_text(obj).encode())


def _read_exact_file(directory: Path, name: str, expected: bytes) -> bytes | None:
    """None if ``name`` is absent or holds exactly ``expected``, else what it holds
    (never more than ``expected``'s length is read: a larger file is unusable input)."""
    path = directory / name
    if not path.exists():
        return None
    try:
        data = read_bounded(path, len(expected), what=name)
    except Oversized as exc:
        raise unreadable(exc, name) from None
    except OSError as exc:
        raise UnusableBundle(f"cannot read {path}: {exc.strerror}", where=name) from None
    return None if data == expected else data


def _artifact_mismatch(directory: Path, genesis: Genesis) -> dict[str, Any] | None:
    """The bundle's contract artifact, if it has one, is the one genesis deploys."""
    if not (directory / REGISTRY_ARTIFACT_FILE).exists():
        return None
    if not genesis.params.contracts:
        message = "this chain runs no contracts, yet the bundle carries a contract artifact"
    elif _read_exact_file(directory, REGISTRY_ARTIFACT_FILE, registry_artifact_bytes()) is not None:
        message = "not the election registry artifact this chain deploys (byte for byte)"
    else:
        return None
    return {"check": "contract_artifact", "where": REGISTRY_ARTIFACT_FILE, "message": message}


def _check_registry_code(result: ReplayResult) -> dict[str, Any] | None:
    """The code the replayed chain holds at the registry's address is the artifact's
    runtime bytecode (followed by the immutables its constructor stored)."""
    if result.registry_code is None:
        return None
    runtime = load_artifact("ElectionRegistry").bytecode_runtime
    if result.registry_code[: len(runtime)] == runtime:
        return None
    return {"check": "contract_artifact", "where": f"code at {REGISTRY_ADDRESS.hex()} at the tip",
            "message": "the registry's code on chain is not the artifact's runtime bytecode"}


def _check_registry_results(result: ReplayResult) -> dict[str, Any] | None:
    """A result the authority published on chain must be the count of the ballots."""
    computed = result.tally.to_json_obj()["elections"]
    for election_id, (phase, counts) in result.registry.items():
        if phase != "tallied" or "tally" not in computed[election_id]:
            continue
        mine = tuple(computed[election_id]["tally"].values())
        if counts != mine:
            return {
                "check": "published_result",
                "where": f"registry result of election {election_id}",
                "message": f"the authority published {list(counts)}, the ballots count {list(mine)}",
            }
    return None


def results_text(obj: Any) -> str:
    """The one text form of results.json (export writes it, verify insists on it)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _compare_results(claim: Any, computed: dict[str, Any]) -> str | None:
    """None if the published result is exactly the recomputed one, else the first difference."""
    if not isinstance(claim, dict) or claim.get("format") != computed["format"]:
        return "results.json is not a canonical ballot-ledger/results/v1 document"
    if claim.get("height") != computed["height"]:
        return f"results.json is for height {claim.get('height')}, the bundle ends at {computed['height']}"
    elections = claim.get("elections")
    if not isinstance(elections, dict) or set(elections) != set(computed["elections"]):
        return "results.json names other elections than the genesis"
    for eid, mine in computed["elections"].items():
        theirs = elections[eid]
        for key, value in mine.items():
            if theirs.get(key) != value:
                return f"election {eid}: published {key} {theirs.get(key)!r}, recomputed {value!r}"
        if set(theirs) != set(mine):
            return f"election {eid}: unexpected fields {sorted(set(theirs) - set(mine))}"
    return None


def _check_encrypted_results(result: ReplayResult, chain_id: str) -> dict[str, Any] | None:
    """Every published result of an election whose trustees' ceremony made its key: the
    counts must be the decryption, by t valid posted shares, of the sums of exactly the
    counted ballots (the ceremony itself was checked block by block as it was posted)."""
    for election_id, (election, ceremony) in result.ceremonies.items():
        phase, counts = result.registry[election_id]
        if phase != "tallied":
            continue
        try:
            qualified = ceremony.qualified_commitments()
            context = TallyContext.from_ceremony(ceremony_context(chain_id, election), qualified)
        except LedgerError as exc:
            return _failure(exc.at(f"ceremony of election {election_id}"))
        shares = [s for s in ceremony.shares if s is not None]
        failure = check_encrypted_result(result, election_id, context, shares, counts)
        if failure is not None:
            return failure
    return None


def check_encrypted_result(
    result: ReplayResult,
    election_id: str,
    context: TallyContext,
    shares: Sequence[DecryptionShare],
    counts: Sequence[int],
    *,
    refused: Mapping[int, str] | None = None,
) -> dict[str, Any] | None:
    """Check an encrypted election's published result (``ledger.result_check``) against
    the sums this replay recomputed: None if it holds (then recorded in
    ``result.result_checks`` for the report, refused shares named), else the failure,
    at ``result of election ID`` followed by the place (``choice c``, ``counts``,
    ``decryption shares``). ``refused``: posted shares already refused
    (``result_check.decode_posted_shares``)."""
    where = f"result of election {election_id}"
    sums = result.encrypted_sums.get(election_id)
    if sums is None:
        return {"check": "unknown_election", "where": where,
                "message": f"the replay summed no encrypted election {election_id!r}"}
    try:
        result.result_checks[election_id] = check_result(context, sums, shares, counts, refused=refused)
    except LedgerError as exc:
        return _failure(exc.at(where))
    return None


def _failure(exc: LedgerError) -> dict[str, Any]:
    return {"check": exc.code, "where": exc.where, "message": exc.message}


def _fill(report: Report, result: ReplayResult) -> None:
    frontier = result.tip.frontier()
    report.blocks = result.blocks
    report.ballots = result.ballots
    report.tip_height = result.tip.height
    report.log_size = frontier.size
    report.log_root = frontier.root().hex()
    report.results = result.tally.to_json_obj()["elections"]
    for election_id, (phase, counts) in result.registry.items():
        report.results[election_id]["phase"] = phase
        if counts:
            report.results[election_id]["published_on_chain"] = list(counts)
    report.encrypted_sums = dict(result.encrypted_sums)
    report.sums_seconds = result.sums_seconds
    for election_id, sums in result.encrypted_sums.items():
        # what trustees decrypt, as a digest; no count per choice until a result checks out
        entry = report.results[election_id]
        entry["encrypted_sum_sha256"] = sums.sha256()
        entry["ballots_summed"] = sums.ballots
        closes_at = result.tally.elections[election_id].election.closes_at_ms
        # final once no ballot can be admitted: past the window, or closed in the registry
        entry["voting_closed"] = result.tip.time_ms >= closes_at or entry.get("phase") in ("closed", "tallied")
    for election_id, checked in result.result_checks.items():
        report.results[election_id]["decrypted_counts"] = list(checked.counts)
        report.results[election_id]["decryption_shares_used"] = list(checked.used)
        report.results[election_id]["decryption_shares_refused"] = {
            str(trustee): why for trustee, why in sorted(checked.refused.items())}
