"""Hostile files given to the command line: JSON nested 100,000 deep, files larger than any
valid one, a blocks.jsonl line with no end. Each is refused in a real ``ballotledger``
process with its exit code, a message naming the file (and line), and no traceback.

``verify`` imports py-evm, which raises Python's recursion limit to 100,000; before the
bounded readers the deep files below made it die of a C stack overflow (exit 139)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from ballotledger.bundlegen import generate_bundle
from ballotledger.netsetup import init_network
from node.gateway.config import GatewayConfig
from tests.helpers import ROOT, run_cli
from verifier.bundle import BLOCKS_FILE, max_line_bytes, read_genesis

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "b"
    generate_bundle(out, 30, block_ballots=15, processes=1, max_block_ballots=100)
    return out


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("net")
    init_network(out, validators=1, voters=4)
    return out


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and proc.returncode not in (-11, 139), out
    return out


def _verify_failure(bundle: Path) -> tuple[int, dict[str, str]]:
    proc = run_cli("verify", bundle, "--json")
    _no_traceback(proc)
    return proc.returncode, json.loads(proc.stdout)["failure"]


def _one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Refused with ``code`` in one line that says ``words``."""
    lines = [line for line in _no_traceback(proc).splitlines() if line.strip()]
    assert proc.returncode == code and len(lines) == 1, lines
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("name, body, where, check", [
    ("genesis.json", DEEP, "genesis.json", "too_deep"),
    (BLOCKS_FILE, DEEP + b"\n", f"{BLOCKS_FILE} line 1", "too_deep"),
    # this chain's results.json is a few hundred bytes at most, so 200 KB is refused unread
    ("results.json", DEEP, "results.json", "oversized"),
    ("results.json", b"[" * 90 + b"]" * 90, "results.json", "too_deep"),
], ids=["genesis", "blocks line", "results", "results within size"])
def test_deep_json_in_a_bundle_is_unusable_input(bundle: Path, tmp_path: Path, name: str, body: bytes,
                                                 where: str, check: str) -> None:
    """Fails when any of them is parsed unbounded (the first three: exit 139, no report)."""
    copy = shutil.copytree(bundle, tmp_path / "b")
    (copy / name).write_bytes(body)
    code, failure = _verify_failure(copy)
    assert (code, failure["check"], failure["where"]) == (2, check, where)


def test_a_deep_line_after_good_ones_is_named_by_its_number(bundle: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(bundle, tmp_path / "b")
    first = (bundle / BLOCKS_FILE).read_bytes().splitlines(keepends=True)[0]
    (copy / BLOCKS_FILE).write_bytes(first + DEEP + b"\n")
    code, failure = _verify_failure(copy)
    assert (code, failure["check"], failure["where"]) == (2, "too_deep", f"{BLOCKS_FILE} line 2")


# A child that runs the command and reports its exit code, output and peak memory.
_MEASURED = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(json.dumps({'code': p.returncode, 'out': p.stdout + p.stderr,\n"
    "                  'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
)


def _verify_measured(bundle: Path) -> tuple[int, dict[str, str], float]:
    proc = subprocess.run([sys.executable, "-c", _MEASURED, sys.executable, "-m", "ballotledger", "verify",
                           str(bundle), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    result = json.loads(proc.stdout)
    assert "Traceback" not in result["out"], result["out"]
    return result["code"], json.loads(result["out"].splitlines()[-1])["failure"], result["peak_mib"]


@pytest.mark.parametrize("head", [b"", b'{"block": "'], ids=["zeros", "canonical start"])
def test_a_gigabyte_line_without_end_is_refused_without_being_held(bundle: Path, tmp_path: Path,
                                                                   head: bytes) -> None:
    """A 1 GiB blocks.jsonl with no newline (sparse: no disk used). Reading it whole took
    2.18 GB; the reader measures a line that cannot be canonical without keeping it, and
    holds one that might be only up to the chain's longest valid line, once: about 80 and
    230 MiB here. Fails when the line is read whole (over 2 GB), when a line that cannot be
    canonical is held (about 240 MiB) or when one is held twice (about 330 MiB)."""
    copy = shutil.copytree(bundle, tmp_path / "b")
    with (copy / BLOCKS_FILE).open("wb") as fh:
        fh.write(head)
        fh.truncate(1 << 30)
    code, failure, peak_mib = _verify_measured(copy)
    assert (code, failure["check"], failure["where"]) == (2, "oversized", f"{BLOCKS_FILE} line 1")
    longest_mib = max_line_bytes(read_genesis(bundle)) / (1 << 20)  # 128 MiB on this chain
    assert peak_mib < (160 if not head else 160 + longest_mib), peak_mib


def test_receipt_verify_refuses_a_deep_receipt_in_one_line(bundle: Path, tmp_path: Path) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_bytes(DEEP)
    proc = run_cli("receipt", "verify", receipt, "--genesis", bundle / "genesis.json")
    _one_line(proc, 2, "unusable input", "too_deep", str(receipt))


def test_checkpoint_compare_refuses_a_deep_checkpoint_in_one_line(bundle: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_bytes(DEEP)
    proc = run_cli("checkpoint", "compare", old, old, "--genesis", bundle / "genesis.json",
                   "--rpc", "http://127.0.0.1:9")  # never reached
    _one_line(proc, 2, "unusable input", "too_deep", str(old))


def test_node_run_refuses_a_deep_config_in_one_line(network: Path, tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_bytes(b"name = " + DEEP)
    proc = run_cli("node", "run", "--config", config)
    _one_line(proc, 2, "unusable config", "bad_config", str(config), "nested")


def test_node_run_refuses_an_oversized_genesis_in_one_line(network: Path, tmp_path: Path) -> None:
    node = shutil.copytree(network, tmp_path / "net")
    with (node / "genesis.json").open("r+b") as fh:
        fh.truncate(1 << 30)  # sparse: refused by its size, unread
    proc = run_cli("node", "run", "--config", node / "node0" / "node.toml")
    _one_line(proc, 2, "unusable config", "oversized", "genesis.json")


def test_gateway_run_refuses_a_deep_keys_file_in_one_line(network: Path, tmp_path: Path) -> None:
    keys = tmp_path / "api_keys.json"
    config = GatewayConfig(listen="127.0.0.1:9", genesis_file=network / "genesis.json", validators=("http://x",),
                           outbox_dir=tmp_path / "outbox", api_keys_file=keys)
    (tmp_path / "gateway.toml").write_text(tomli_w.dumps(config.to_obj()))
    keys.write_bytes(b'{"keys": ' + DEEP + b"}")
    proc = run_cli("gateway", "run", "--config", tmp_path / "gateway.toml")
    _one_line(proc, 2, "unusable config", "bad_gateway_config", str(keys), "nested")


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("mempool_max =", "mempol_max ="), "unknown key 'mempol_max' in node.toml"),
    (lambda t: t.replace("propose_ms =", "propse_ms ="), "unknown key 'propse_ms' in [consensus]"),
    (lambda t: t.replace('name = "', 'nom = "', 1), "unknown key 'nom'"),
    (lambda t: t.replace("mempool_max = ", "mempool_max = -"), "mempool_max"),
    (lambda t: t.replace('log_format = "plain"', 'log_format = "xml"'), "log_format must be one of"),
    (lambda t: t.replace("log_format =", "log_fromat ="), "unknown key 'log_fromat' in node.toml"),
    (lambda t: t.replace("checkpoint_interval_s = ", "checkpoint_interval_s = -"),
     "[consensus] checkpoint_interval_s must be 0 or a positive integer"),
], ids=["top-level", "consensus", "missing name", "negative", "log format", "misspelt log format",
       "negative checkpoint interval"])
def test_node_run_refuses_a_misspelt_or_bad_config_key_in_one_line(
    network: Path, tmp_path: Path, edit: Callable[[str], str], expected: str
) -> None:
    """Fails when a misspelt key is silently ignored (its default would apply unseen)."""
    node = shutil.copytree(network, tmp_path / "net")
    config = node / "node0" / "node.toml"
    config.write_text(edit(config.read_text()))
    proc = run_cli("node", "run", "--config", config)
    _one_line(proc, 2, "unusable config", "bad_config", str(config), expected)


def test_node_run_refuses_a_missing_config_in_one_line(tmp_path: Path) -> None:
    proc = run_cli("node", "run", "--config", tmp_path / "nonexistent.toml")
    _one_line(proc, 2, "unusable config", "nonexistent.toml")


def test_gateway_run_refuses_a_misspelt_key_in_one_line(network: Path, tmp_path: Path) -> None:
    config = GatewayConfig(listen="127.0.0.1:9", genesis_file=network / "genesis.json", validators=("http://x",),
                           outbox_dir=tmp_path / "outbox", api_keys_file=tmp_path / "keys.json")
    obj = config.to_obj()
    obj["gateway"]["forward_bacth"] = 10
    (tmp_path / "gateway.toml").write_text(tomli_w.dumps(obj))
    proc = run_cli("gateway", "run", "--config", tmp_path / "gateway.toml")
    _one_line(proc, 2, "unusable config", "bad_gateway_config", "unknown key 'forward_bacth'")
