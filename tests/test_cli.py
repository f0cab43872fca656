"""The command line end to end: the demo, the verifier's exit codes, receipts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.block import Block

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ballotledger", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = _cli("demo", "--voters", "60", "--block-size", "16", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VALID" in proc.stdout and "Receipt verified" in proc.stdout
    return out


def test_demo_bundle_verifies_with_json_report(demo_out: Path) -> None:
    genesis_hash = json.loads(_cli("verify", demo_out / "bundle", "--json").stdout)["genesis_hash"]
    proc = _cli("verify", demo_out / "bundle", "--json", "--pin-genesis", genesis_hash)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["valid"] is True
    assert report["ballots"] == 60 and report["blocks"] == 4
    assert sum(report["results"]["board-2026"]["tally"].values()) == 60


def test_wrong_pin_and_tampering_fail_with_the_check_named(demo_out: Path, tmp_path: Path) -> None:
    proc = _cli("verify", demo_out / "bundle", "--json", "--pin-genesis", "00" * 32)
    assert proc.returncode == 1 and json.loads(proc.stdout)["failure"]["check"] == "genesis_pin"

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "genesis.json").write_text((demo_out / "bundle" / "genesis.json").read_text())
    lines = (demo_out / "bundle" / "blocks.jsonl").read_text().splitlines()
    obj = json.loads(lines[1])
    raw = bytearray.fromhex(obj["block"])
    ballot = Block.decode(bytes(raw)).ballots[15]
    raw[raw.find(ballot) + len(ballot) - 10] ^= 0x01  # inside ballot 15's signature
    obj["block"] = raw.hex()
    lines[1] = json.dumps(obj)
    (bundle / "blocks.jsonl").write_text("\n".join(lines) + "\n")
    proc = _cli("verify", bundle, "--json")
    failure = json.loads(proc.stdout)["failure"]
    assert proc.returncode == 1, proc.stdout
    assert failure["where"].startswith("block 2 ballot 15"), failure
    assert failure["check"] in {"bad_signature", "bad_encoding", "not_in_credential_set"}

    (bundle / "blocks.jsonl").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    failure = json.loads(_cli("verify", bundle, "--json").stdout)["failure"]
    assert failure["check"] == "bad_height" and failure["where"] == "block 3"


def test_unusable_input_exits_2(tmp_path: Path) -> None:
    proc = _cli("verify", tmp_path, "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["failure"]["check"] == "unusable_input"


def test_receipt_verify(demo_out: Path, tmp_path: Path) -> None:
    genesis = demo_out / "genesis.json"
    assert _cli("receipt", "verify", demo_out / "receipt.json", "--genesis", genesis).returncode == 0
    receipt = json.loads((demo_out / "receipt.json").read_text())
    receipt["log_index"] += 1
    bad = tmp_path / "receipt.json"
    bad.write_text(json.dumps(receipt))
    proc = _cli("receipt", "verify", bad, "--genesis", genesis)
    assert proc.returncode == 1 and "bad_inclusion_proof" in proc.stdout
