"""Backup of a running node and restore on another machine.

Backup. The node holds its LevelDB databases' locks, so the node itself writes the
backup: ``ballotledger node backup`` asks it over a Unix socket in its data directory
(``admin.sock``, mode 0600: only the node's own user may ask; nothing listens on the
network). On the consensus loop, between two commits, the node takes a LevelDB snapshot
of the chain and one of the contract state (microseconds: the pause is reported); a
thread then copies each snapshot through an iterator into a fresh LevelDB under the
backup directory while consensus goes on, copies the chain's block files
(:mod:`ledger.blockfiles`) as far as the snapshot's blocks fill them, and writes
``manifest.json`` last, so a backup without a manifest is incomplete and refused. The contract state is
content-addressed, so its snapshot holds every state the chain's blocks name.

What a backup never holds: the signing log (``wal/``) and the key. A validator's
signing log from an older backup is a trap: the key may have signed at later heights
(on the machine that died, or on one still running), and a node that trusted the old
log could sign something conflicting: equivocation. So a restored data directory
starts with no signing log and a ``restored.json`` marker; a validator started on it
votes on nothing until it has caught up by block sync and committed every height it has
heard its peers vote on (any height the key signed before is decided by then), then
removes the marker and votes (``RestoreGuard``). Never restore a key that may still be
running elsewhere: no rule on this machine can stop two running copies of one key.

Restore checks the backup before anything uses it: the manifest, the chain's genesis,
then every block with ``ledger.store_check`` (headers, certificates, hash and tracking
indexes, the log's nodes, the tip) and that the tip's contract state is present; a
backup that fails any check is refused in one line and nothing is left in the data
directory. The node started on it then fetches the blocks made since from its peers,
each checked with the ledger rules and its certificate (block sync).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import plyvel

from ledger import jsonbound
from ledger.errors import LedgerError
from ledger.files import fsync_path, read_bounded, write_atomic
from ledger.genesis import Genesis
from ledger.rules import validator_schedule
from ledger.state import ChainTip
from ledger.store import LedgerStore
from ledger.store_check import check_stored_chain
from ledger.validators import ValidatorSchedule

log = logging.getLogger(__name__)

BACKUP_FORMAT = "ballot-ledger/backup/v1"
MANIFEST_FILE = "manifest.json"
GENESIS_FILE = "genesis.json"
ADMIN_SOCKET = "admin.sock"
RESTORED_MARKER = "restored.json"
CHAIN_DB, STATE_DB, SIGNING_LOG = "db", "evm", "wal"
MAX_MANIFEST_BYTES = 16 * 1024
MAX_ADMIN_LINE = 8 * 1024
COPY_BATCH_BYTES = 8 << 20  # one LevelDB write batch of the copy
LAG_PROBE_S = 0.005  # how often the consensus loop's lag is sampled while a backup runs


class BackupError(LedgerError):
    code = "bad_backup"


@dataclass(frozen=True)
class BackupManifest:
    format: str
    chain_id: str
    genesis_hash: str
    height: int
    tip_hash: str
    node: str
    created_ms: int
    entries: dict[str, int]  # database -> keys copied

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def load(cls, directory: Path) -> BackupManifest:
        path = directory / MANIFEST_FILE
        try:
            obj = jsonbound.loads(read_bounded(path, MAX_MANIFEST_BYTES), max_bytes=MAX_MANIFEST_BYTES,
                                  max_depth=3, what=str(path))
        except OSError as exc:
            raise BackupError(f"{directory} is not a complete backup: cannot read {MANIFEST_FILE} "
                              f"({exc.strerror})") from None
        except LedgerError as exc:
            raise BackupError(exc.message) from None
        try:
            manifest = cls(**obj)
        except TypeError:
            raise BackupError(f"{path} is not a backup manifest") from None
        if manifest.format != BACKUP_FORMAT:
            raise BackupError(f"{path}: format {str(manifest.format)[:40]!r} is not {BACKUP_FORMAT!r}")
        if not isinstance(manifest.height, int) or not isinstance(manifest.entries, dict):
            raise BackupError(f"{path}: malformed height or entries")
        return manifest


# --- writing a backup (in the node process) ------------------------------------------------
def copy_snapshot(snapshot: Any, target: Path, abort: threading.Event) -> int:
    """Every key of ``snapshot`` into a new LevelDB at ``target``, the last batch synced;
    the number of keys. Stops with ``BackupError`` once ``abort`` is set (node stopping)."""
    db = plyvel.DB(str(target), create_if_missing=True, error_if_exists=True, compression=None)
    count = 0
    try:
        batch = db.write_batch()
        size = 0
        for key, value in snapshot.iterator(fill_cache=False):  # keep the node's hot blocks cached
            batch.put(key, value)
            count += 1
            size += len(key) + len(value)
            if size >= COPY_BATCH_BYTES:
                if abort.is_set():
                    raise BackupError("the node is stopping; backup abandoned")
                batch.write()
                batch = db.write_batch()
                size = 0
        batch.write()
        db.put(b"\x00backup/complete", b"", sync=True)  # syncs the log behind every batch
        db.delete(b"\x00backup/complete", sync=True)
    finally:
        db.close()
    return count


def copy_prefixes(files: list[tuple[Path, int]], target: Path, abort: threading.Event) -> None:
    """The first ``size`` bytes of each file into ``target`` under its own name, synced:
    the chain's block files as far as the snapshot's blocks fill them (appends made since
    lie past that and are not copied)."""
    for source, size in files:
        with source.open("rb") as src, (target / source.name).open("xb") as dst:
            left = size
            while left > 0:
                if abort.is_set():
                    raise BackupError("the node is stopping; backup abandoned")
                chunk = src.read(min(left, COPY_BATCH_BYTES))
                if not chunk:
                    raise BackupError(f"{source} ended {left} bytes short of the blocks it holds")
                dst.write(chunk)
                left -= len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    fsync_path(target)  # the new files' directory entries


def write_backup(out: Path, snapshots: dict[str, Any], manifest: BackupManifest, genesis_json: str,
                 abort: threading.Event, files: dict[str, list[tuple[Path, int]]] | None = None) -> BackupManifest:
    """The backup directory (see the module): each snapshot a database with the files
    beside it (the chain's block files), genesis, the manifest last."""
    entries = {name: copy_snapshot(snap, out / name, abort) for name, snap in snapshots.items()}
    for name, extent in (files or {}).items():
        copy_prefixes(extent, out / name, abort)
    write_atomic(out / GENESIS_FILE, genesis_json.encode())
    done = BackupManifest(**{**asdict(manifest), "entries": entries})
    write_atomic(out / MANIFEST_FILE, done.to_json().encode())
    return done


def prepare_out(out: Path) -> None:
    if not out.is_absolute():
        raise BackupError(f"the backup directory must be an absolute path, not {out}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists and is not an empty directory")
    out.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class BackupSource:
    """What the admin socket backs up of the running node."""

    name: str
    genesis: Genesis
    store: LedgerStore
    state_snapshot: Callable[[], Any | None]  # a snapshot of the contract state, if the chain has one


def state_snapshot_of(engine: Any) -> Callable[[], Any | None]:
    """How to snapshot a node's contract state: its own LevelDB's snapshot, if it has one."""
    from contracts.engine import LevelStateDB

    db = getattr(engine, "db", None)
    return db.snapshot if isinstance(db, LevelStateDB) else lambda: None


class AdminServer:
    """The node's local admin socket: one JSON line in, one out. Method ``backup``."""

    def __init__(self, path: Path, source: BackupSource) -> None:
        self.path = path
        self.source = source
        self._server: asyncio.AbstractServer | None = None
        self._busy = False
        self._abort = threading.Event()
        self._copying: asyncio.Future[BackupManifest] | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a killed process; our data-dir lock says none runs
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_ADMIN_LINE)
        except OSError as exc:  # a path too long for a socket: the node runs, without backups
            log.warning("no admin socket at %s (%s); backups need it", self.path, exc.strerror or exc)
        finally:
            os.umask(old)

    async def stop(self) -> None:
        self._abort.set()
        if self._copying is not None:
            with contextlib.suppress(Exception):
                await self._copying
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request = jsonbound.loads(line, max_bytes=MAX_ADMIN_LINE, max_depth=2, what="admin request")
            if not isinstance(request, dict) or request.get("method") != "backup" or not isinstance(
                    request.get("out"), str):
                raise BackupError('the admin socket answers {"method": "backup", "out": DIR} only')
            answer: dict[str, Any] = {"ok": True, **await self.backup(Path(request["out"]))}
        except (LedgerError, OSError, ValueError) as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(ConnectionError):
            writer.write((json.dumps(answer) + "\n").encode())
            await writer.drain()
            writer.close()

    async def backup(self, out: Path) -> dict[str, Any]:
        """Snapshot on this loop (between commits), copy in a thread; the manifest and the
        loop's pause and worst lag meanwhile."""
        if self._busy:
            raise BackupError("a backup is already being written")
        self._busy = True
        try:
            prepare_out(out)
            started = time.perf_counter()
            source = self.source
            store = source.store
            snapshots = {CHAIN_DB: store.snapshot()}
            files = {CHAIN_DB: store.block_files()}  # at the same instant: between two commits
            state = source.state_snapshot()
            if state is not None:
                snapshots[STATE_DB] = state
            tip = store.tip
            pause = time.perf_counter() - started
            manifest = BackupManifest(BACKUP_FORMAT, source.genesis.chain_id, source.genesis.hash().hex(),
                                      tip.height, tip.block_hash.hex(), source.name, int(time.time() * 1000), {})
            log.info("backup of height %d to %s started", tip.height, out)
            with LagProbe() as probe:
                self._copying = asyncio.ensure_future(asyncio.to_thread(
                    write_backup, out, snapshots, manifest, source.genesis.to_json(), self._abort, files))
                done = await self._copying
            seconds = time.perf_counter() - started
            log.info("backup of height %d written to %s in %.1f s (loop paused %.2f ms to snapshot)",
                     done.height, out, seconds, pause * 1000)
            return {"manifest": asdict(done), "seconds": round(seconds, 3), "pause_ms": round(pause * 1000, 3),
                    "loop_lag_max_ms": round(probe.worst_s * 1000, 1)}
        finally:
            self._busy = False
            self._copying = None


class LagProbe:
    """How late the loop runs a short sleep, at worst, while it is sampled: the cost a
    backup's copy thread puts on the consensus loop."""

    def __init__(self) -> None:
        self.worst_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> LagProbe:
        self._task = asyncio.ensure_future(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.worst_s = max(self.worst_s, loop.time() - before - LAG_PROBE_S)


def request_backup(data_dir: Path, out: Path, *, timeout: float = 3600.0) -> dict[str, Any]:
    """Ask the node running on ``data_dir`` for a backup into ``out``; its answer."""
    path = data_dir / ADMIN_SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise BackupError(f"no node answers at {path} ({exc.strerror or exc}); is it running?") from None
        sock.sendall((json.dumps({"method": "backup", "out": str(out.absolute())}) + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk or len(reply) > MAX_MANIFEST_BYTES:
                break
            reply += chunk
    answer = jsonbound.loads(reply, max_bytes=MAX_MANIFEST_BYTES + 1024, max_depth=4, what="admin answer")
    if not isinstance(answer, dict) or not answer.get("ok"):
        raise BackupError(str(answer.get("error") if isinstance(answer, dict) else answer))
    return answer


# --- restoring ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Restored:
    height: int
    tip_hash: str
    check_seconds: float
    copy_seconds: float


def restore_backup(source: Path, data_dir: Path, genesis: Genesis,
                   on_block: Callable[[int, int], None] | None = None) -> Restored:
    """Check the backup at ``source`` and make it ``data_dir``'s chain (see the module);
    ``BackupError`` in one line when it is refused, leaving nothing behind."""
    manifest = BackupManifest.load(source)
    if manifest.genesis_hash != genesis.hash().hex():
        raise BackupError(f"{source} is a backup of chain {manifest.chain_id!r} with genesis "
                          f"{manifest.genesis_hash[:16]}..., not of this node's genesis {genesis.hash().hex()[:16]}...")
    for name in (CHAIN_DB, STATE_DB, SIGNING_LOG, RESTORED_MARKER):
        if (data_dir / name).exists():
            raise BackupError(f"{data_dir} already holds {name}; restore only into a new data directory")
    names = [CHAIN_DB] + ([STATE_DB] if genesis.params.contracts else [])
    for name in names:
        if not (source / name / "CURRENT").is_file():
            raise BackupError(f"{source} is not a complete backup: no {name} database")
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = {name: data_dir / f"{name}.restoring" for name in names}
    try:
        started = time.perf_counter()
        for name, path in staging.items():
            if path.exists():
                shutil.rmtree(path)  # a restore interrupted before
            shutil.copytree(source / name, path)
        copied = time.perf_counter()
        tip = _check_restored(staging, genesis, on_block)
        if tip.height != manifest.height or tip.block_hash.hex() != manifest.tip_hash:
            raise BackupError(f"the backup's chain ends at height {tip.height}, not at the manifest's "
                              f"{manifest.height} ({manifest.tip_hash[:16]}...)")
        checked = time.perf_counter()
        for name, path in staging.items():
            path.rename(data_dir / name)
    except BaseException:
        for path in staging.values():
            shutil.rmtree(path, ignore_errors=True)
        raise
    RestoreGuard.mark(data_dir, manifest.height, manifest.tip_hash)
    return Restored(tip.height, tip.block_hash.hex(), round(checked - copied, 3), round(copied - started, 3))


def _check_restored(staging: dict[str, Path], genesis: Genesis,
                    on_block: Callable[[int, int], None] | None) -> ChainTip:
    from contracts.engine import EvmExecutor, memory_state_db

    engine = EvmExecutor(genesis, memory_state_db()) if genesis.params.contracts else None
    genesis_tip = ChainTip.at_genesis(genesis, engine)
    try:
        with LedgerStore(staging[CHAIN_DB], genesis, genesis_tip=genesis_tip) as store:
            schedule = _claimed_schedule(staging, genesis, store.tip.state_root)
            tip = check_stored_chain(store, genesis, genesis_tip, schedule, on_block)
    except LedgerError as exc:
        raise BackupError(f"the backup is refused: {exc.message}") from None
    if STATE_DB in staging:
        state = plyvel.DB(str(staging[STATE_DB]))
        try:
            present = state.get(tip.state_root) is not None
        finally:
            state.close()
        if not present:
            raise BackupError(f"the backup is refused: the contract state {tip.state_root.hex()[:16]}... "
                              f"of block {tip.height} is missing")
    return tip


def _claimed_schedule(staging: dict[str, Path], genesis: Genesis, state_root: bytes) -> ValidatorSchedule:
    """The validator sets as the backup's tip state says: the check then holds every
    header's named set and certificate to them (ledger.store_check)."""
    if not genesis.params.contracts:
        return ValidatorSchedule(genesis.validators)
    from rlp.exceptions import DecodingError
    from trie.exceptions import MissingTrieNode

    from contracts.engine import EvmExecutor, LevelStateDB

    db = LevelStateDB.open(str(staging[STATE_DB]), sync=False)
    try:
        return validator_schedule(genesis, state_root, EvmExecutor(genesis, db))
    except (MissingTrieNode, DecodingError) as exc:
        raise BackupError(f"the backup is refused: its contract state cannot be read ({type(exc).__name__})") from None
    finally:
        db.close()


class RestoreGuard:
    """A restored validator's promise not to equivocate (see the module): while the
    data directory holds ``restored.json`` the node does not vote; it clears it once its
    chain has committed every height it heard its peers vote on."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / RESTORED_MARKER
        self.pending = self.path.exists()
        self.highest_heard = 0
        if self.pending:
            log.info("%s was restored from a backup without a signing log: no vote until caught up", data_dir)

    @staticmethod
    def mark(data_dir: Path, height: int, tip_hash: str) -> None:
        body = {"restored_height": height, "tip_hash": tip_hash, "restored_ms": int(time.time() * 1000),
                "rule": "no vote until the chain has committed every height heard from peers"}
        write_atomic(data_dir / RESTORED_MARKER, (json.dumps(body) + "\n").encode())

    def heard(self, height: int) -> None:
        if height > self.highest_heard:
            self.highest_heard = height

    def caught_up(self, committed: int) -> bool:
        """True once, when the marker is cleared: heights up to ``committed`` are decided
        and cover every height heard, so this key can have signed nothing above them."""
        if not self.pending or self.highest_heard == 0 or committed < self.highest_heard:
            return False
        self.path.unlink(missing_ok=True)
        self.pending = False
        return True

