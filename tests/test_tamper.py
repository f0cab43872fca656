"""The verifier finds every kind of change to a bundle, and names the check and where."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballotledger.bundlegen import generate_bundle
from contracts import load_artifact
from ledger.block import Block, CommitCertificate, CommitSignature
from ledger.crypto import SigningKey
from ledger.genesis import Genesis
from verifier.bundle import BLOCKS_FILE, REGISTRY_ARTIFACT_FILE, block_line, registry_artifact_bytes
from verifier.verify import verify_bundle

Lines = list[tuple[Block, CommitCertificate]]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "b"
    generate_bundle(out, 120, block_ballots=30, processes=1, max_block_ballots=100)
    report = verify_bundle(out)
    assert report.valid and report.ballots == 120 and report.blocks == 4, report.failure
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _read(bundle: Path) -> Lines:
    out = []
    for text in (bundle / BLOCKS_FILE).read_text().splitlines():
        obj = json.loads(text)
        block = Block.decode(bytes.fromhex(obj["block"]))
        out.append((block, CommitCertificate.decode(bytes.fromhex(obj["certificate"]))))
    return out


def _write(bundle: Path, lines: Lines) -> None:
    (bundle / BLOCKS_FILE).write_text("".join(block_line(b.encode(), c.encode()) for b, c in lines))


def _body(block: Block, ballots: tuple[bytes, ...]) -> Block:
    return dataclasses.replace(block, ballots=ballots)


def _header(block: Block, **changes: object) -> Block:
    return dataclasses.replace(block, header=dataclasses.replace(block.header, **changes))


def _flip_in_ballot(lines: Lines) -> Lines:
    block, cert = lines[1]
    ballots = list(block.ballots)
    raw = bytearray(ballots[7])
    raw[-20] ^= 1  # inside the signature
    ballots[7] = bytes(raw)
    lines[1] = (_body(block, tuple(ballots)), cert)
    return lines


def _drop(lines: Lines) -> Lines:
    block, cert = lines[2]
    lines[2] = (_body(block, block.ballots[:5] + block.ballots[6:]), cert)
    return lines


def _insert(lines: Lines) -> Lines:
    block, cert = lines[2]
    lines[2] = (_body(block, (*block.ballots, lines[3][0].ballots[0])), cert)
    return lines


def _reorder(lines: Lines) -> Lines:
    block, cert = lines[0]
    lines[0] = (_body(block, (block.ballots[1], block.ballots[0], *block.ballots[2:])), cert)
    return lines


def _few_signatures(lines: Lines) -> Lines:
    block, cert = lines[1]
    lines[1] = (block, dataclasses.replace(cert, signatures=cert.signatures[:2]))
    return lines


def _forged_signature(lines: Lines) -> Lines:
    block, cert = lines[1]
    impostor = SigningKey.from_seed(b"impostor").sign(cert.digest())
    sigs = (cert.signatures[0], CommitSignature(1, impostor), *cert.signatures[2:])
    lines[1] = (block, dataclasses.replace(cert, signatures=sigs))
    return lines


def _duplicated_signature(lines: Lines) -> Lines:
    block, cert = lines[1]
    sigs = (cert.signatures[0], cert.signatures[0], cert.signatures[1])
    lines[1] = (block, dataclasses.replace(cert, signatures=sigs))
    return lines


def _header_time(lines: Lines) -> Lines:
    block, cert = lines[2]
    lines[2] = (_header(block, time_ms=block.header.time_ms + 1), cert)
    return lines


def _state_root(lines: Lines) -> Lines:
    block, cert = lines[2]
    lines[2] = (_header(block, state_root=b"\x05" * 32), cert)
    return lines


def _swap_blocks(lines: Lines) -> Lines:
    lines[1], lines[2] = lines[2], lines[1]
    return lines


CASES: list[tuple[str, Callable[[Lines], Lines], str, str]] = [
    ("one ballot byte", _flip_in_ballot, "bad_signature", "block 2 ballot 7"),
    ("dropped ballot", _drop, "bad_log_root", "block 3"),
    ("inserted ballot", _insert, "bad_log_root", "block 3"),
    ("reordered ballots", _reorder, "bad_log_root", "block 1"),
    ("certificate with too few signatures", _few_signatures, "insufficient_quorum", "block 2 certificate"),
    ("forged certificate signature", _forged_signature, "bad_signature", "block 2 certificate"),
    ("duplicated certificate signature", _duplicated_signature, "bad_certificate", "block 2 certificate"),
    ("header field", _header_time, "bad_certificate", "block 3 certificate"),
    ("state root", _state_root, "bad_state_root", "block 3"),
    ("blocks swapped", _swap_blocks, "bad_height", "block 3"),
]


def _assert_named(pristine: Path, tmp_path: Path, tamper: Callable[[Lines], Lines], check: str, where: str,
                  jobs: int) -> None:
    bundle = _copy(pristine, tmp_path / "b")
    _write(bundle, tamper(_read(bundle)))
    report = verify_bundle(bundle, jobs=jobs)
    assert not report.valid and report.exit_code == 1
    assert report.failure is not None
    assert (report.failure["check"], report.failure["where"]) == (check, where), report.failure


@pytest.mark.parametrize("name, tamper, check, where", CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_change_is_named(
    pristine: Path, tmp_path: Path, name: str, tamper: Callable[[Lines], Lines], check: str, where: str
) -> None:
    _assert_named(pristine, tmp_path, tamper, check, where, jobs=1)


def test_result_count_and_genesis_changes(pristine: Path, tmp_path: Path) -> None:
    bundle = _copy(pristine, tmp_path / "r")
    results = json.loads((bundle / "results.json").read_text())
    results["elections"]["national-2026"]["tally"]["a"] += 1
    (bundle / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    report = verify_bundle(bundle)
    assert report.failure is not None and report.failure["check"] == "published_result"
    assert "tally" in report.failure["message"]

    bundle = _copy(pristine, tmp_path / "g")
    genesis = json.loads((bundle / "genesis.json").read_text())
    genesis["validators"][0]["public_key"] = SigningKey.from_seed(b"other").public_key.hex()
    (bundle / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
    pinned = json.loads((pristine / "genesis.json").read_text())
    report = verify_bundle(bundle)
    # the genesis hash is block 1's parent: any change to genesis breaks the first link
    assert report.failure is not None
    assert (report.failure["check"], report.failure["where"]) == ("bad_parent", "block 1")

    report = verify_bundle(bundle, pin_genesis=Genesis.from_json_obj(pinned).hash().hex())
    assert report.failure is not None and report.failure["check"] == "genesis_pin"


FILES = ["genesis.json", BLOCKS_FILE, "results.json", "README", REGISTRY_ARTIFACT_FILE]


def test_contract_artifact_is_the_one_the_chain_deployed(pristine: Path, tmp_path: Path) -> None:
    assert (pristine / REGISTRY_ARTIFACT_FILE).read_bytes() == registry_artifact_bytes()
    bundle = _copy(pristine, tmp_path / "a")
    artifact = json.loads((bundle / REGISTRY_ARTIFACT_FILE).read_text())
    artifact["abi"] = artifact["abi"][1:]  # still valid JSON, no longer what genesis deploys
    (bundle / REGISTRY_ARTIFACT_FILE).write_text(json.dumps(artifact))
    report = verify_bundle(bundle)
    assert report.failure is not None and report.exit_code == 1
    assert (report.failure["check"], report.failure["where"]) == ("contract_artifact", REGISTRY_ARTIFACT_FILE)


def test_registry_code_on_chain_must_be_the_artifacts() -> None:
    from verifier.replay import ReplayResult
    from verifier.verify import _check_registry_code

    runtime = load_artifact("ElectionRegistry").bytecode_runtime
    result = ReplayResult(b"", None, None)  # type: ignore[arg-type]  # only the code is read
    result.registry_code = runtime + bytes(32)  # the immutables follow the runtime code
    assert _check_registry_code(result) is None
    result.registry_code = runtime[:-1] + bytes([runtime[-1] ^ 1]) + bytes(32)
    failure = _check_registry_code(result)
    assert failure is not None and failure["check"] == "contract_artifact"


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(FILES), st.floats(0, 1, exclude_max=True), st.integers(1, 255))
def test_any_single_byte_change_anywhere_is_detected(pristine: Path, tmp_path_factory: pytest.TempPathFactory,
                                                     name: str, where: float, delta: int) -> None:
    bundle = _copy(pristine, tmp_path_factory.mktemp("byte") / "b")
    data = bytearray((bundle / name).read_bytes())
    pos = int(where * len(data))
    data[pos] = (data[pos] + delta) % 256
    (bundle / name).write_bytes(bytes(data))
    report = verify_bundle(bundle)
    assert not report.valid, f"{name} byte {pos} changed and the bundle still verified"


# --- with worker processes (--jobs) the verdict and the first failure named are the same
def test_parallel_replay_agrees_on_a_valid_bundle(pristine: Path) -> None:
    one, two = verify_bundle(pristine), verify_bundle(pristine, jobs=2)
    assert two.valid and two.exit_code == 0
    assert two.results == one.results and two.results
    assert (two.ballots, two.blocks, two.log_root) == (one.ballots, one.blocks, one.log_root)


PARALLEL_CASES = [CASES[0], CASES[1], CASES[5]]


@pytest.mark.parametrize("name, tamper, check, where", PARALLEL_CASES, ids=[c[0] for c in PARALLEL_CASES])
def test_parallel_replay_names_the_same_failure(
    pristine: Path, tmp_path: Path, name: str, tamper: Callable[[Lines], Lines], check: str, where: str
) -> None:
    _assert_named(pristine, tmp_path, tamper, check, where, jobs=2)


@pytest.mark.parametrize("name", FILES)
def test_every_covered_file_must_be_there(pristine: Path, tmp_path: Path, name: str) -> None:
    """A bundle without any one of its files is not VALID: without genesis.json or
    blocks.jsonl there is nothing to replay (unusable input, exit 2); without any other
    the chain is replayed and the bundle then reported incomplete (exit 1, the file named).
    Fails when a file's absence is taken for a bundle that never had it."""
    bundle = _copy(pristine, tmp_path / "b")
    (bundle / name).unlink()
    report = verify_bundle(bundle)
    assert not report.valid and report.failure is not None
    if name in ("genesis.json", BLOCKS_FILE):
        assert (report.exit_code, report.failure["check"]) == (2, "unusable_input")
        assert name in report.failure["message"]
    else:
        assert (report.exit_code, report.failure["check"], report.failure["where"]) == (1, "missing_file", name)
        assert report.ballots == 120  # replayed all the same


@pytest.mark.parametrize("name", ["genesis.json", "results.json", "README", REGISTRY_ARTIFACT_FILE])
def test_a_file_larger_than_any_valid_one_is_refused_unread(pristine: Path, tmp_path: Path, name: str) -> None:
    bundle = _copy(pristine, tmp_path / "b")
    with (bundle / name).open("r+b") as fh:
        fh.truncate(1 << 30)  # sparse: refused by its size
    report = verify_bundle(bundle)
    assert report.failure is not None
    assert (report.exit_code, report.failure["check"], report.failure["where"]) == (2, "oversized", name)
