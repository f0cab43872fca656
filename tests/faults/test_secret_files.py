"""Secrets are written for their owner only, whatever was at the path before, and
atomically: a reader sees the old secret or the new one, never a part, never exposed."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from unittest import mock

import pytest

from ledger.crypto import SigningKey
from node.config import read_key, write_key, write_secret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_secret_over_a_world_readable_file_becomes_owner_only(tmp_path: Path) -> None:
    """Fails when the file is opened in place (O_TRUNC keeps an existing file's mode)."""
    path = tmp_path / "validator.key"
    path.write_text("old\n")
    path.chmod(0o644)
    key = SigningKey.from_seed(b"secret")
    write_key(path, key)
    assert _mode(path) == 0o600
    assert read_key(path).secret == key.secret
    assert [p.name for p in tmp_path.iterdir()] == ["validator.key"]  # no temporary left behind


def test_a_new_secret_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_secret(tmp_path / "sub" / "frontend.key", "blg_x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "sub" / "frontend.key") == 0o600


def test_a_link_at_the_path_is_replaced_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not yours\n")
    target.chmod(0o644)
    (tmp_path / "secret.key").symlink_to(target)
    write_secret(tmp_path / "secret.key", "s3cret")
    assert target.read_text() == "not yours\n" and _mode(target) == 0o644
    assert not (tmp_path / "secret.key").is_symlink() and _mode(tmp_path / "secret.key") == 0o600


def test_a_failed_write_leaves_the_old_secret_whole(tmp_path: Path) -> None:
    path = tmp_path / "validator.key"
    write_secret(path, "old")
    with mock.patch("node.config.os.replace", side_effect=OSError("disk full")), pytest.raises(OSError):
        write_secret(path, "new")
    assert path.read_text() == "old\n" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["validator.key"]
