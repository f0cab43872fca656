"""The demo's trustees and authority, each doing what its own command does: five trustee
key files, an encrypted election defined on chain with them (threshold 3), the key
ceremony run by five ``ballotledger trustee ceremony`` processes, the authority's
``election finalize-key`` and ``open``; after the close, decryption shares from four
``trustee decrypt`` processes (the fifth trustee stays away) and ``election tally
--publish``."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from ballotledger.localnet import Localnet
from ballotledger.registry_rpc import RegistryRpc
from ballotledger.trustee_key import TrusteeKey, write_new_trustee_key
from ledger.genesis import ENCRYPTED_SCHEME, Contest, ElectionDef
from verifier.rpc_client import RpcClient

ELECTION = "council-2027"
TRUSTEES, THRESHOLD = 5, 3
ABSENT_AT_TALLY = 5
CONTESTS = (
    Contest("Who should chair the council?", ("ada", "grace", "alan", "edsger", "barbara"), 1),
    Contest("Which motions do you support?", ("longer library hours", "a cycle lane", "a new playground"), 2),
)
# The demo's trustees keep their passphrase in one file; real trustees each keep their own.
DEMO_PASSPHRASE = "demo trustees' passphrase, never for a real election"


class DemoStepFailed(Exception):
    """A command the demo ran refused or failed; its output is the message."""


@dataclass(frozen=True)
class Trustees:
    key_files: tuple[Path, ...]
    passphrase_file: Path


def make_trustees(directory: Path) -> Trustees:
    """Five trustee keys, sealed (what ``ballotledger trustee keygen`` makes)."""
    directory.mkdir(parents=True, exist_ok=True)
    passphrase = directory / "passphrase"
    passphrase.write_text(DEMO_PASSPHRASE + "\n")
    files = []
    for i in range(1, TRUSTEES + 1):
        path = directory / f"trustee{i}.key"
        write_new_trustee_key(path, TrusteeKey.generate(), DEMO_PASSPHRASE, log2_n=12)
        files.append(path)
    return Trustees(tuple(files), passphrase)


def definition_toml(net: Localnet, trustees: Trustees) -> str:
    """The election file the authority writes: the roll of the genesis election, its
    window, two contests and the five trustees' public keys."""
    import tomli_w

    from ballotledger.trustee_key import read_trustee_key

    roll = net.genesis.elections[0]
    return tomli_w.dumps({
        "id": ELECTION, "question": "Council election 2027", "choices": [],
        "credential_root": roll.credential_root.hex(), "credential_count": roll.credential_count,
        "opens_at_ms": roll.opens_at_ms, "closes_at_ms": roll.closes_at_ms, "revoting": "last-counts",
        "payload_scheme": ENCRYPTED_SCHEME, "joint_key": "",
        "trustees": [read_trustee_key(f, DEMO_PASSPHRASE).public_key.hex() for f in trustees.key_files],
        "threshold": THRESHOLD,
        "contests": [c.to_json_obj() for c in CONTESTS],
    })


def run_command(*args: str | Path) -> str:
    """A ``ballotledger`` command in this process; its output, or DemoStepFailed."""
    from ballotledger.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exit_code != 0:
        raise DemoStepFailed(f"ballotledger {' '.join(map(str, args[:2]))}: {result.output.strip()}")
    return result.output


def spawn_command(*args: str | Path) -> subprocess.Popen[str]:
    """A ``ballotledger`` command as a process of its own (as each trustee runs it)."""
    return subprocess.Popen([sys.executable, "-m", "ballotledger", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 180) -> list[str]:
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise DemoStepFailed(out.strip())
        outputs.append(out)
    return outputs


def run_ceremony(net: Localnet, trustees: Trustees, authority: Path, console: Console) -> ElectionDef:
    """Every trustee deals; the authority sets the joint key and opens the election.
    Returns the election with its key, as the registry gives it."""
    runs = [spawn_command("trustee", "ceremony", "--key", key, "--rpc", net.rpc_urls[i % len(net.rpc_urls)],
                          "--election", ELECTION, "--wait", "150", "--passphrase-file", trustees.passphrase_file)
            for i, key in enumerate(trustees.key_files)]
    with RpcClient(net.rpc_urls[0]) as client:
        rpc = RegistryRpc(client)
        deadline = time.monotonic() + 150
        while not all(d is not None for d in rpc.ceremony(ELECTION).dealings):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in runs):
                finish(runs, timeout=5)
                raise DemoStepFailed("the trustees' dealings did not all arrive")
            time.sleep(0.3)
        console.print(f"  all {TRUSTEES} trustees posted their dealings (commitments with proofs, encrypted shares)")
        out = run_command("election", "finalize-key", "--rpc", net.rpc_urls[0], "--election", ELECTION,
                          "--authority-key", authority)
        console.print("  authority: " + " ".join(out.split()), highlight=False)
        outputs = finish(runs)
        console.print(f"  each trustee checked the shares dealt to it and kept its share of the key: "
                      f"{sum('kept' in o for o in outputs)} of {TRUSTEES}", highlight=False)
        run_command("election", "open", "--rpc", net.rpc_urls[0], "--election", ELECTION, "--authority-key", authority)
        return rpc.election(ELECTION).election


def decrypt_and_publish(net: Localnet, trustees: Trustees, authority: Path, sums: Path, console: Console) -> str:
    """Four trustees post decryption shares; the authority combines three or more and
    publishes the counts. Returns the tally's output."""
    present = [f for i, f in enumerate(trustees.key_files, start=1) if i != ABSENT_AT_TALLY]
    runs = [spawn_command("trustee", "decrypt", "--key", key, "--rpc", net.rpc_urls[i % len(net.rpc_urls)],
                          "--election", ELECTION, "--sums", sums, "--passphrase-file", trustees.passphrase_file)
            for i, key in enumerate(present)]
    for out in finish(runs):
        console.print(f"  {out.strip().splitlines()[-1]}", highlight=False)
    console.print(f"  trustee {ABSENT_AT_TALLY} is absent: {THRESHOLD} of {TRUSTEES} shares suffice")
    return run_command("election", "tally", "--rpc", net.rpc_urls[0], "--election", ELECTION, "--sums", sums,
                       "--authority-key", authority, "--publish")
