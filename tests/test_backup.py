"""Backup through a node's admin socket and restore, in one process over real LevelDB."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from ledger.chain import Chain
from ledger.errors import LedgerError
from ledger.store import LedgerStore
from node.backup import (
    ADMIN_SOCKET,
    MANIFEST_FILE,
    RESTORED_MARKER,
    AdminServer,
    BackupError,
    BackupSource,
    RestoreGuard,
    request_backup,
    restore_backup,
)
from tests.helpers import commit_blocks, kit

K = kit(4, 64)


async def _backup_while_committing(data: Path, out: Path) -> dict:  # type: ignore[type-arg]
    """Serve the admin socket, ask for a backup from a thread, and commit blocks on the
    loop meanwhile; the answer."""
    with Chain(data / "db", K.genesis) as chain:
        commit_blocks(K, chain, 3, 4)
        server = AdminServer(data / ADMIN_SOCKET, BackupSource("v0", K.genesis, chain.store, lambda: None))
        await server.start()
        try:
            asked = asyncio.ensure_future(asyncio.to_thread(request_backup, data, out))
            await asyncio.sleep(0)
            commit_blocks(K, chain, 2, 4, first_voter=12)  # the chain goes on; the backup is of the snapshot's moment
            answer = await asked
            assert chain.store.height == 5
        finally:
            await server.stop()
        assert not (data / ADMIN_SOCKET).exists()
        return answer


def test_backup_of_a_running_store_restores_and_checks(tmp_path: Path) -> None:
    answer = asyncio.run(_backup_while_committing(tmp_path / "node", tmp_path / "backup"))
    height = answer["manifest"]["height"]
    assert height in (3, 4, 5) and answer["pause_ms"] < 50
    with LedgerStore(tmp_path / "node" / "db", K.genesis) as source:  # the backup's blocks and no more
        held = sum(len(source.raw_block(h)) for h in range(1, height + 1))
    assert sum(p.stat().st_size for p in (tmp_path / "backup" / "db").glob("blocks-*.dat")) == held > 0
    restored = restore_backup(tmp_path / "backup", tmp_path / "new", K.genesis)
    assert restored.height == height
    with LedgerStore(tmp_path / "new" / "db", K.genesis) as store:
        assert store.height == height and store.tip.block_hash.hex() == answer["manifest"]["tip_hash"]
    assert (tmp_path / "new" / RESTORED_MARKER).exists() and not (tmp_path / "new" / "wal").exists()
    with pytest.raises(BackupError, match="already holds db"):  # never over a chain
        restore_backup(tmp_path / "backup", tmp_path / "new", K.genesis)


def test_incomplete_foreign_or_busy_backups_are_refused(tmp_path: Path) -> None:
    asyncio.run(_backup_while_committing(tmp_path / "node", tmp_path / "backup"))
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "backup", other)
    (other / MANIFEST_FILE).unlink()
    with pytest.raises(BackupError, match="not a complete backup"):
        restore_backup(other, tmp_path / "d1", K.genesis)
    foreign = kit(1, 24).genesis
    with pytest.raises(BackupError, match="not of this node's genesis"):
        restore_backup(tmp_path / "backup", tmp_path / "d2", foreign)
    manifest = json.loads((tmp_path / "backup" / MANIFEST_FILE).read_text())
    manifest["height"] += 1  # the manifest claims more than the chain holds
    (other / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="not at the manifest's"):
        restore_backup(other, tmp_path / "d3", K.genesis)
    assert not any((tmp_path / "d3").iterdir())  # nothing left behind
    with pytest.raises(LedgerError, match="no node answers"):
        request_backup(tmp_path / "nowhere", tmp_path / "b2")


def test_a_restored_validator_votes_only_past_every_height_it_heard(tmp_path: Path) -> None:
    """Fails when ``caught_up`` ignores the heights heard (checked by hand once)."""
    RestoreGuard.mark(tmp_path, 7, "00" * 32)
    guard = RestoreGuard(tmp_path)
    assert guard.pending and not guard.caught_up(7)  # heard nobody yet: nothing is known decided
    guard.heard(12)
    guard.heard(9)
    assert not guard.caught_up(11) and (tmp_path / RESTORED_MARKER).exists()
    assert guard.caught_up(12) and not guard.pending and not (tmp_path / RESTORED_MARKER).exists()
    assert not guard.caught_up(13)  # once
    assert not RestoreGuard(tmp_path).pending
