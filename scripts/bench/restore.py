"""Restore benchmark: back up a validator of a 1,000,000-ballot chain, restore the backup
on a new data directory, and time restore plus catch-up to peers that are ahead.

    python scripts/bench/restore.py [--quick] [--ballots N] [--behind N] [--work DIR]

The chain is a synthetic bundle (``ballotledger.bundlegen``: real ballots, signatures and
certificates) committed into a validator's store (the in-order rules, with the bundle's
signatures trusted as block sync trusts its workers' checks). Four validators of its
genesis: validator 3 runs alone on the chain minus its last ``--behind`` ballots and is
backed up while running (``node backup``); validators 0-2 then run on the whole chain
(a quorum, making new blocks); validator 3's backup is restored on a new data directory
(``node restore``: copy and check every block) and validator 3 started on it: it syncs
the blocks it lacks from its peers, checking each, until it has their tip. The figure is
the wall time from the restore command to that moment (target: 300 s for 1M ballots).
``--work`` keeps the bundle and the stores for another run. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w
from _common import ROOT, emit, machine, peak_rss_mib

from ballotledger.bundlegen import generate_bundle
from ballotledger.netsetup import free_ports
from ledger.block import Block, CommitCertificate
from ledger.chain import Chain
from ledger.crypto import SigningKey
from ledger.files import load_genesis
from ledger.genesis import Genesis
from ledger.rules import admitted_from_flags, elections_at
from node.config import ConsensusTimeouts, NodeConfig, PeerConfig, write_key
from node.evm import open_executor
from verifier.bundle import BLOCKS_FILE, GENESIS_FILE
from verifier.rpc_client import RpcClient, RpcUnavailable

SEED = "bundle"  # generate_bundle's default: its validator keys derive from it
BLOCK_BALLOTS = 4000
VALIDATORS = 4
RESTORED = 3


def _lines(bundle: Path) -> list[tuple[bytes, bytes]]:
    out = []
    with (bundle / BLOCKS_FILE).open() as fh:
        for line in fh:
            obj = json.loads(line)
            out.append((bytes.fromhex(obj["block"]), bytes.fromhex(obj["certificate"])))
    return out


def commit_blocks(data: Path, genesis: Genesis, lines: list[tuple[bytes, bytes]]) -> int:
    """Commit bundle blocks into a validator's data directory (db/ and evm/) on its tip;
    the tip height. The bundle's signatures are trusted (it was made here), the rest of
    the rules run as they do for a synced block."""
    data.mkdir(parents=True, exist_ok=True)
    engine = open_executor(genesis, path=data / "evm")
    try:
        with Chain(data / "db", genesis, engine) as chain:
            for raw, cert in lines:
                block = Block.decode(raw)
                if block.height <= chain.store.height:
                    continue
                known = elections_at(genesis, chain.store.tip.state_root, engine)
                trusted = admitted_from_flags(genesis, raw, b"\x01" * len(block.ballots), elections=known)
                chain.commit(block, CommitCertificate.decode(cert), admitted=trusted)
            return chain.store.height
    finally:
        engine.db.close()  # type: ignore[attr-defined]


def write_configs(root: Path, genesis: Genesis) -> list[Path]:
    keys = [SigningKey.from_seed(f"{SEED}/validator/{i}".encode()) for i in range(VALIDATORS)]
    ports = free_ports(2 * VALIDATORS)
    root.mkdir(parents=True, exist_ok=True)
    (root / GENESIS_FILE).write_text(genesis.to_json())
    paths = []
    for i, key in enumerate(keys):
        node = root / f"node{i}"
        node.mkdir(parents=True, exist_ok=True)
        write_key(node / "validator.key", key)
        peers = tuple(PeerConfig(k.public_key, f"127.0.0.1:{ports[2 * j]}") for j, k in enumerate(keys) if j != i)
        config = NodeConfig(
            name=f"v{i}", data_dir=node / "data", genesis_file=root / GENESIS_FILE, key_file=node / "validator.key",
            p2p_listen=f"127.0.0.1:{ports[2 * i]}", rpc_listen=f"127.0.0.1:{ports[2 * i + 1]}", peers=peers,
            timeouts=ConsensusTimeouts(), admission_workers=2 if i == RESTORED else 0,
        )
        path = node / "node.toml"
        path.write_text(tomli_w.dumps(config.to_obj(relative_to=node)))
        paths.append(path)
    return paths


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ballotledger", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, check=False)


def start(config: Path) -> subprocess.Popen[bytes]:
    log = (config.parent / "node.log").open("ab")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.Popen([sys.executable, "-m", "ballotledger", "node", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    finally:
        log.close()


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def status(config: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    if proc.poll() is not None:
        raise RuntimeError(f"{config.parent.name} exited with {proc.returncode}; see {config.parent / 'node.log'}")
    try:
        with RpcClient(f"http://{NodeConfig.load(config).rpc_listen}", timeout=5) as c:
            return c.call("ballot_status")  # type: ignore[no-any-return]
    except RpcUnavailable:
        return None


def wait_status(config: Path, proc: subprocess.Popen[bytes], timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = status(config, proc)
        if answer is not None:
            return answer
        time.sleep(0.2)
    raise TimeoutError(f"{config.parent.name} did not serve within {timeout} s")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prepare(work: Path, ballots: int, behind: int, figures: dict[str, Any]) -> None:
    """The bundle and the two stores (without and with the last ``behind`` ballots)."""
    bundle = work / "bundle"
    if not (bundle / "results.json").exists():
        print(f"generating a {ballots}-ballot chain ...", file=sys.stderr)
        t = time.perf_counter()
        generate_bundle(bundle, ballots, seed=SEED, block_ballots=BLOCK_BALLOTS, validators=VALIDATORS)
        figures["generate_s"] = round(time.perf_counter() - t, 1)
        print(f"  {figures['generate_s']} s", file=sys.stderr)
    base, ahead = work / "base", work / "ahead"
    if not (ahead / "done").exists():
        print("committing the chain into a validator store ...", file=sys.stderr)
        genesis = load_genesis(bundle / GENESIS_FILE)
        lines = _lines(bundle)
        behind_blocks = max(1, -(-behind // BLOCK_BALLOTS))
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(ahead, ignore_errors=True)
        t = time.perf_counter()
        commit_blocks(base, genesis, lines[:-behind_blocks])
        shutil.copytree(base, ahead)
        commit_blocks(ahead, genesis, lines[-behind_blocks:])
        figures["import_s"] = round(time.perf_counter() - t, 1)
        print(f"  {figures['import_s']} s", file=sys.stderr)
        (ahead / "done").write_text("")


def run(work: Path, ballots: int, behind: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    prepare(work, ballots, behind, figures)
    genesis = load_genesis(work / "bundle" / GENESIS_FILE)
    base, ahead = work / "base", work / "ahead"
    nodes = work / "nodes"
    shutil.rmtree(nodes, ignore_errors=True)
    configs = write_configs(nodes, genesis)
    shutil.copytree(base, configs[RESTORED].parent / "data")

    # Validator 3 runs (alone: no quorum, but serving and looping) and is backed up.
    print("backing up validator 3 ...", file=sys.stderr)
    lone = start(configs[RESTORED])
    try:
        wait_status(configs[RESTORED], lone)
        t = time.perf_counter()
        backup = work / "backup"
        shutil.rmtree(backup, ignore_errors=True)
        made = _cli("node", "backup", "--config", configs[RESTORED], "--out", backup, "--json")
        figures["backup_s"] = round(time.perf_counter() - t, 2)
        if made.returncode != 0:
            raise RuntimeError(made.stdout + made.stderr)
        answer = json.loads(made.stdout)
        figures.update(backup_height=answer["manifest"]["height"], backup_pause_ms=answer["pause_ms"],
                       backup_loop_lag_max_ms=answer["loop_lag_max_ms"], backup_bytes=dir_bytes(backup))
    finally:
        stop([lone])
    shutil.rmtree(configs[RESTORED].parent / "data")  # that machine is gone

    # Validators 0-2 run on the whole chain; validator 3 is restored and catches up.
    for config in configs[:RESTORED]:
        shutil.copytree(ahead, config.parent / "data", ignore=shutil.ignore_patterns("done"))
    peers = [start(c) for c in configs[:RESTORED]]
    restored: subprocess.Popen[bytes] | None = None
    try:
        tips = [wait_status(c, p)["height"] for c, p in zip(configs, peers, strict=False)]
        print(f"peers at height {max(tips)}; restoring validator 3 ...", file=sys.stderr)
        t0 = time.perf_counter()
        done = _cli("node", "restore", "--from", backup, "--data-dir", configs[RESTORED].parent / "data", "--json")
        if done.returncode != 0:
            raise RuntimeError(done.stdout + done.stderr)
        t_restored = time.perf_counter()
        report = json.loads(done.stdout)
        restored = start(configs[RESTORED])
        first = wait_status(configs[RESTORED], restored)
        t_serving = time.perf_counter()
        while True:
            mine = status(configs[RESTORED], restored)
            theirs = status(configs[0], peers[0])
            if mine and theirs and mine["height"] >= theirs["height"]:
                break
            time.sleep(0.2)
        t_tip = time.perf_counter()
        with RpcClient(f"http://{NodeConfig.load(configs[0]).rpc_listen}") as a, \
                RpcClient(f"http://{NodeConfig.load(configs[RESTORED]).rpc_listen}") as b:
            h = min(mine["height"], theirs["height"])
            same = a.call("ballot_getBlocks", h, 1) == b.call("ballot_getBlocks", h, 1)
        figures.update(
            restore_s=round(t_restored - t0, 2), restore_copy_s=report["copy_seconds"],
            restore_check_s=report["check_seconds"], start_s=round(t_serving - t_restored, 2),
            catch_up_s=round(t_tip - t_serving, 2), restore_plus_catch_up_s=round(t_tip - t0, 2),
            start_height=first["height"], tip_height=mine["height"], tip_log_size=mine["log_size"],
            same_tip_as_peers=same,
        )
    finally:
        stop(peers + ([restored] if restored is not None else []))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ballots", type=int, default=None)
    parser.add_argument("--behind", type=int, default=None, help="ballots the peers are ahead of the backup")
    parser.add_argument("--work", type=Path, default=None, help="keep the bundle and stores here (reused)")
    parser.add_argument("--prepare", action="store_true", help="only make the chain and stores in --work")
    args = parser.parse_args()
    ballots = args.ballots or (40_000 if args.quick else 1_000_000)
    behind = args.behind or (8_000 if args.quick else 40_000)
    if args.prepare and args.work is not None:
        prepare(args.work, ballots, behind, {})
        return
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        figures = run(work, ballots, behind)
    emit({"benchmark": "restore", "quick": args.quick, "machine": machine(), "ballots": ballots,
          "ballots_behind": behind, "target_s": 300, "wall_s": round(time.perf_counter() - t, 1),
          "peak_rss_mib": peak_rss_mib(), **figures})


if __name__ == "__main__":
    main()
