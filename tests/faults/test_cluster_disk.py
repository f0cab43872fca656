"""Disk faults of one validator in a running cluster: a full disk, and a damaged LevelDB
file found when the node starts.

A full disk is made without privileges: the validator runs under RLIMIT_FSIZE (so any
write that would take a file past the limit fails with EFBIG, as a write to a full disk
fails with ENOSPC), with its databases' logs flushed into tables first so that opening
them writes nothing large.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from pathlib import Path

import plyvel
import pytest

from node.validator import EXIT_HALTED
from tests.faults.cluster import Cluster
from tests.helpers import run_cli

pytestmark = pytest.mark.integration

DISK_LIMIT = 96 * 1024  # bytes a file may reach: a few seconds of blocks under the load
DATABASES = ("db", "wal", "evm")  # the node's LevelDB directories under data_dir


def _data_dir(cluster: Cluster, index: int) -> Path:
    return cluster.net.configs[index].parent / "data"


def _stop(cluster: Cluster, index: int) -> None:
    cluster.take_down(index, "stopped")
    cluster.net.stop(index)


def _flush(data: Path) -> None:
    """Open and close each database: LevelDB turns its log into tables as it opens."""
    for name in DATABASES:
        if (data / name / "CURRENT").exists():
            plyvel.DB(str(data / name)).close()


def _fresh_log(cluster: Cluster, index: int) -> Path:
    """Start the validator's next run on an empty node.log (kept under the file limit)."""
    log = cluster.net.log_path(index)
    log.rename(log.with_name(f"node.{time.time_ns()}.log"))
    return log


def test_disk_full_halts_the_validator_cleanly_and_it_recovers(cluster: Cluster) -> None:
    """Writes failing under load halt the validator (exit 3, one critical line naming the
    failed write, no traceback); restarted with room it opens its stores, catches up and
    votes again, and the cluster's invariants hold throughout. Fails when a failed commit
    is logged and the validator runs on (tried: it never exits, and its peers ban it)."""
    index = 2
    with cluster.scenario("disk full"):
        time.sleep(0.5)
        _stop(cluster, index)
        _flush(_data_dir(cluster, index))
        log = _fresh_log(cluster, index)
        cluster.no_submit.add(index)  # what it took before the halt would die with it
        cluster.net.start(index, max_file_bytes=DISK_LIMIT)
        proc = cluster.net.procs[index]
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the validator did not halt under a {DISK_LIMIT}-byte file limit:\n{log.read_text()[-2000:]}")
        text = log.read_text(errors="replace")
        assert code == EXIT_HALTED, f"exit {code}:\n{text[-3000:]}"
        assert "Traceback" not in text, text[-3000:]
        halts = [line for line in text.splitlines() if "CRITICAL" in line]
        assert len(halts) == 1 and "failed (" in halts[0] and "stopping" in halts[0], text[-3000:]
        cluster.net.procs.pop(index, None)
        _fresh_log(cluster, index)
        cluster.no_submit.discard(index)
        cluster.restart(index)
        time.sleep(0.5)
    print("halted with:", halts[0])


def _flip(path: Path, rng: random.Random, count: int = 8) -> list[int]:
    """Invert ``count`` bytes at seeded random offsets of ``path``; the offsets."""
    data = bytearray(path.read_bytes())
    offsets = sorted(rng.randrange(len(data)) for _ in range(count))
    for offset in offsets:
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return offsets


def _refused(cluster: Cluster, index: int) -> str:
    """``node run`` of validator ``index``: refused, in one line; that line."""
    started = run_cli("node", "run", "--config", cluster.net.configs[index], timeout=120)
    out = (started.stdout + started.stderr).strip()
    assert started.returncode != 0, out[-3000:]
    assert "Traceback" not in out and len(out.splitlines()) == 1, out[-3000:]
    assert out.startswith("unusable data directory:") and "damaged" in out, out
    return out


def test_damaged_leveldb_files_are_refused_at_start(cluster: Cluster, fault_seed: int) -> None:
    """Bytes flipped in a stopped validator's chain store, in the log of its last writes
    and then in its largest table file: ``node run`` refuses it each time with one line
    and a nonzero exit; with its files restored from a copy it catches up and votes again.
    (What each check of the open catches, and that a byte changed anywhere is refused or
    harmless, is ``tests/test_store.py::test_a_damaged_store_is_refused_or_unchanged_never_different``.)"""
    index = 1
    rng = random.Random(f"{fault_seed}/leveldb")
    data = _data_dir(cluster, index)
    backup = data.with_name("data-backup")
    refusals = []
    with cluster.scenario("damaged .log and .ldb files"):
        time.sleep(0.5)
        _stop(cluster, index)
        for kind in ("log", "ldb"):
            if kind == "ldb":
                _flush(data)
            shutil.copytree(data, backup)
            files = sorted((data / "db").glob(f"*.{kind}"), key=lambda p: p.stat().st_size)
            assert files and files[-1].stat().st_size > 0, sorted(p.name for p in (data / "db").iterdir())
            offsets = _flip(files[-1], rng)
            print(f"flipped bytes of {files[-1].name} ({files[-1].stat().st_size} bytes) at {offsets}")
            refusals.append(_refused(cluster, index))
            shutil.rmtree(data)
            backup.rename(data)
        cluster.restart(index)
        time.sleep(0.5)
    print("refused with:", *refusals, sep="\n  ")
