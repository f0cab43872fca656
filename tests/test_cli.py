"""The command line end to end: the demo, the verifier's exit codes, receipts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger.block import Block
from tests.helpers import run_cli


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=300)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = _cli("demo", "--voters", "60", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VALID" in proc.stdout and "Receipt verified" in proc.stdout
    assert "The published result is the voters' choices" in proc.stdout
    return out


def test_demo_bundle_verifies_with_json_report(demo_out: Path) -> None:
    genesis_hash = json.loads(_cli("verify", demo_out / "bundle", "--json").stdout)["genesis_hash"]
    proc = _cli("verify", demo_out / "bundle", "--json", "--pin-genesis", genesis_hash)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["valid"] is True
    # 59 voters before the close, one of them twice (a re-vote); one waits until after it
    assert report["ballots"] == 60 and report["blocks"] >= 2
    council = report["results"]["council-2027"]
    assert council["phase"] == "tallied" and council["ballots_counted"] == 59
    assert sum(council["decrypted_counts"][:5]) == 59  # one chair each
    assert council["decrypted_counts"] == council["published_on_chain"]


def test_verify_keeps_state_and_resumes(demo_out: Path, tmp_path: Path) -> None:
    first = _cli("verify", demo_out / "bundle", "--json", "--state", tmp_path / "state", "--jobs", "2")
    again = _cli("verify", demo_out / "bundle", "--json", "--state", tmp_path / "state")
    assert first.returncode == again.returncode == 0, first.stdout + again.stdout
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert (a["ballots"], a["log_root"], a["results"]) == (b["ballots"], b["log_root"], b["results"])
    assert (tmp_path / "state" / "CURRENT").exists()  # a LevelDB that outlives the run


def test_wrong_pin_and_tampering_fail_with_the_check_named(demo_out: Path, tmp_path: Path) -> None:
    proc = _cli("verify", demo_out / "bundle", "--json", "--pin-genesis", "00" * 32)
    assert proc.returncode == 1 and json.loads(proc.stdout)["failure"]["check"] == "genesis_pin"

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "genesis.json").write_text((demo_out / "bundle" / "genesis.json").read_text())
    lines = (demo_out / "bundle" / "blocks.jsonl").read_text().splitlines()
    blocks = [Block.decode(bytes.fromhex(json.loads(text)["block"])) for text in lines]
    line = next(i for i, b in enumerate(blocks) if len(b.ballots) > 1)
    obj = json.loads(lines[line])
    raw = bytearray.fromhex(obj["block"])
    last = len(Block.decode(bytes(raw)).ballots) - 1
    ballot = Block.decode(bytes(raw)).ballots[last]
    raw[raw.find(ballot) + len(ballot) - 10] ^= 0x01  # inside the last ballot's signature
    obj["block"] = raw.hex()
    tampered = [*lines[:line], json.dumps(obj), *lines[line + 1 :]]
    (bundle / "blocks.jsonl").write_text("\n".join(tampered) + "\n")
    proc = _cli("verify", bundle, "--json")
    failure = json.loads(proc.stdout)["failure"]
    assert proc.returncode == 1, proc.stdout
    assert failure["where"].startswith(f"block {line + 1} ballot {last}"), failure
    assert failure["check"] in {"bad_signature", "bad_encoding", "not_in_credential_set"}

    assert len(lines) >= 2
    (bundle / "blocks.jsonl").write_text("\n".join(lines[1:]) + "\n")
    failure = json.loads(_cli("verify", bundle, "--json").stdout)["failure"]
    assert failure["check"] == "bad_height" and failure["where"] == "block 2"

    # a truncated bundle is a valid prefix, but not the one the published result counts
    (bundle / "blocks.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    (bundle / "results.json").write_text((demo_out / "bundle" / "results.json").read_text())
    failure = json.loads(_cli("verify", bundle, "--json").stdout)["failure"]
    assert failure["check"] == "published_result" and "height" in failure["message"]


def test_unusable_input_exits_2(tmp_path: Path) -> None:
    proc = _cli("verify", tmp_path, "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["failure"]["check"] == "unusable_input"


def test_receipt_verify(demo_out: Path, tmp_path: Path) -> None:
    genesis = demo_out / "bundle" / "genesis.json"
    assert _cli("receipt", "verify", demo_out / "receipt.json", "--genesis", genesis).returncode == 0
    receipt = json.loads((demo_out / "receipt.json").read_text())
    receipt["log_index"] += 1
    bad = tmp_path / "receipt.json"
    bad.write_text(json.dumps(receipt))
    proc = _cli("receipt", "verify", bad, "--genesis", genesis)
    assert proc.returncode == 1 and "bad_inclusion_proof" in proc.stdout
