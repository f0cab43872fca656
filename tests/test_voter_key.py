"""The voter's key file and the selections typed on the command line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballotledger.selections import parse_select
from ballotledger.voter_key import (
    PASSPHRASE_ENV,
    open_voter_key,
    passphrase_from,
    read_voter_key,
    seal_voter_key,
    write_voter_key,
)
from ledger.crypto import SigningKey
from ledger.errors import BadEncoding, BadKeyFile
from ledger.trustees import seal_secret

KEY = SigningKey.from_seed(b"tests/voter-key")
FAST = 10  # scrypt cost for tests: the files' format is the same


def test_a_sealed_key_opens_with_its_passphrase_only() -> None:
    blob = seal_voter_key(KEY, "correct horse", log2_n=FAST)
    assert KEY.secret not in blob
    assert open_voter_key(blob, "correct horse").secret == KEY.secret
    with pytest.raises(BadKeyFile, match="wrong passphrase"):
        open_voter_key(blob, "correct hors")


def test_another_sealed_secret_is_not_a_voter_key() -> None:
    with pytest.raises(BadKeyFile, match="not a voter key"):
        open_voter_key(seal_secret(b"\xc2\x01\x02", "p", log2_n=FAST), "p")


def test_the_key_file_is_the_owners_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "voter.key"
    write_voter_key(path, KEY, "pass", log2_n=FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KEY.secret.hex() not in path.read_text()
    assert read_voter_key(path, "pass").public_key == KEY.public_key
    with pytest.raises(FileExistsError):
        write_voter_key(path, SigningKey.from_seed(b"other"), "pass", log2_n=FAST)
    assert read_voter_key(path, "pass").public_key == KEY.public_key
    path.chmod(0o600)
    for damaged in ("zz", "00" * 10, "ab" * 70_000):
        path.write_text(damaged)
        with pytest.raises(BadKeyFile):
            read_voter_key(path, "pass")


def test_the_passphrase_comes_from_the_file_then_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "pass"
    file.write_text("from file\nsecond line\n")
    assert passphrase_from(file, {PASSPHRASE_ENV: "from env"}) == "from file"
    assert passphrase_from(None, {PASSPHRASE_ENV: "from env"}) == "from env"
    assert passphrase_from(None, {}) is None
    file.write_text("\n")
    with pytest.raises(BadKeyFile, match="empty"):
        passphrase_from(file, {})
    with pytest.raises(BadKeyFile, match="empty"):
        passphrase_from(None, {PASSPHRASE_ENV: ""})
    file.write_bytes(b"x" * 5000)
    with pytest.raises(BadKeyFile, match="longer"):
        passphrase_from(file, {})


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 63), max_size=5, unique=True), min_size=1, max_size=8), st.randoms())
def test_every_selection_written_in_the_syntax_reads_back(selected: list[list[int]], rnd: object) -> None:
    parts = [f"{i}:{','.join(map(str, picks))}" for i, picks in enumerate(selected)]
    rnd.shuffle(parts)  # type: ignore[attr-defined]
    assert parse_select(" ; ".join(parts) + ";", len(selected)) == selected


@pytest.mark.parametrize(("text", "message"), [
    ("0:1", "no selection for contest 1"),
    ("0:1;1:0;2:0", "contest 2 does not exist"),
    ("0:1;0:2;1:0", "named twice"),
    ("1;0", "cannot read"),
    ("0:a;1:0", "cannot read"),
    ("0:1,;1:0", "cannot read"),
    ("0:-1;1:0", "cannot read"),
    ("0:1;1:0" + " " * 5000, "longer"),
])
def test_a_selection_that_cannot_be_read_is_refused(text: str, message: str) -> None:
    with pytest.raises(BadEncoding, match=message):
        parse_select(text, 2)


def test_a_blank_contest_is_written_out() -> None:
    assert parse_select("0:;1:1", 2) == [[], [1]]
