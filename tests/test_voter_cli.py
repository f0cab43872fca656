"""``ballotledger voter`` and ``ballotledger credentials`` as a voter and a roll holder run
them, through the command line itself (typer's runner)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ballotledger.cli import app
from ballotledger.roll import CredentialList, Roll
from ledger import merkle
from ledger.crypto import SigningKey
from tests.helpers import one_line_refusal, run_with_passphrase

PASSPHRASE = "tr0ub4dor&3 horse"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return run_with_passphrase(PASSPHRASE, *args, env=env)


def keygen(path: Path) -> str:
    result = run("voter", "keygen", "--out", str(path))
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_keygen_prints_only_the_public_key_and_seals_the_secret(tmp_path: Path) -> None:
    key_file = tmp_path / "voter.key"
    result = run("voter", "keygen", "--out", str(key_file))
    assert result.exit_code == 0, result.output
    public = result.stdout.strip()
    assert result.stdout == public + "\n" and len(bytes.fromhex(public)) == 33
    assert PASSPHRASE not in result.output and PASSPHRASE not in key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = run("voter", "public", "--key", str(key_file))
    assert again.exit_code == 0 and again.stdout.strip() == public
    refused = one_line_refusal(run("voter", "keygen", "--out", str(key_file)))  # never over an existing key
    assert "exists" in refused
    assert run("voter", "public", "--key", str(key_file)).stdout.strip() == public


def test_the_passphrase_file_and_a_wrong_passphrase(tmp_path: Path) -> None:
    key_file, pass_file = tmp_path / "voter.key", tmp_path / "passphrase"
    pass_file.write_text("from a file\n")
    made = run("voter", "keygen", "--out", str(key_file), "--passphrase-file", str(pass_file), env={})
    assert made.exit_code == 0, made.output
    opened = run("voter", "public", "--key", str(key_file), "--passphrase-file", str(pass_file))
    assert opened.stdout == made.stdout
    refused = one_line_refusal(run("voter", "public", "--key", str(key_file)))  # the environment's: wrong
    assert "wrong passphrase" in refused and "from a file" not in refused
    assert "bad_key_file" in one_line_refusal(run("voter", "public", "--key", str(tmp_path / "passphrase")))


def test_a_prompted_passphrase_is_not_echoed(tmp_path: Path) -> None:
    key_file = tmp_path / "voter.key"
    result = CliRunner().invoke(app, ["voter", "keygen", "--out", str(key_file)], input="typed secret\ntyped secret\n",
                                env={"BALLOTLEDGER_PASSPHRASE": None})  # type: ignore[dict-item]
    assert result.exit_code == 0, result.output
    assert "typed secret" not in result.output
    opened = run("voter", "public", "--key", str(key_file), env={"BALLOTLEDGER_PASSPHRASE": "typed secret"})
    assert opened.stdout.strip() == result.stdout.split()[-1]  # the runner echoes a newline per hidden input


def test_import_issue_proof_as_a_roll_holder_and_a_voter(tmp_path: Path) -> None:
    roll, issued = tmp_path / "roll.json", tmp_path / "credentials.json"
    publics = [keygen(tmp_path / f"voter{i}.key") for i in range(5)]
    for i, public in enumerate(publics):
        result = run("credentials", "import", "--roll", str(roll), "--public-key", public, "--voter-ref", f"ref-{i}")
        assert result.exit_code == 0, result.output
    assert stat.S_IMODE(roll.stat().st_mode) == 0o600  # it links people to keys
    assert [e.voter_ref for e in Roll.from_json(roll.read_bytes()).entries] == [f"ref-{i}" for i in range(5)]
    assert "duplicate_registration" in one_line_refusal(
        run("credentials", "import", "--roll", str(roll), "--public-key", publics[2]))
    assert "duplicate_registration" in one_line_refusal(
        run("credentials", "import", "--roll", str(roll), "--public-key", keygen(tmp_path / "x.key"),
            "--voter-ref", "ref-1"))
    assert "bad_public_key" in one_line_refusal(
        run("credentials", "import", "--roll", str(roll), "--public-key", "02" + "ff" * 32))
    assert len(Roll.from_json(roll.read_bytes())) == 5  # nothing registered by the refusals

    result = run("credentials", "issue", "--roll", str(roll), "--out", str(issued))
    assert result.exit_code == 0, result.output
    frozen = CredentialList.from_json(issued.read_bytes())
    keys = sorted(bytes.fromhex(p) for p in publics)
    assert json.loads(result.stdout) == {"credential_root": merkle.root(keys).hex(), "credential_count": 5}
    assert list(frozen.public_keys) == keys
    assert "ref-" not in issued.read_text()

    for public in publics:
        proof = run("credentials", "proof", "--credentials", str(issued), "--public-key", public)
        assert proof.exit_code == 0, proof.output
        answer = json.loads(proof.stdout)
        assert answer["index"] == keys.index(bytes.fromhex(public))
        merkle.verify_inclusion(bytes.fromhex(public), answer["index"], 5, [bytes.fromhex(h) for h in answer["path"]],
                                bytes.fromhex(answer["credential_root"]))
    stranger = SigningKey.from_seed(b"not registered").public_key.hex()
    not_listed = run("credentials", "proof", "--credentials", str(issued), "--public-key", stranger)
    assert not_listed.exit_code == 1 and "NOT LISTED" in not_listed.stderr


def test_imports_at_once_all_reach_the_roll(tmp_path: Path) -> None:
    """Roll holders' imports running at the same time each register their key: none is
    lost to another's rewrite of the roll. Fails when the lock is removed (tried: two runs
    of three lost a key)."""
    roll = tmp_path / "roll.json"
    keys = [SigningKey.from_seed(f"concurrent/{i}".encode()).public_key.hex() for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-m", "ballotledger", "credentials", "import", "--roll", str(roll),
                               "--public-key", key], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for key in keys]
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    assert sorted(e.public_key.hex() for e in Roll.from_json(roll.read_bytes()).entries) == sorted(keys)


@pytest.mark.parametrize("content", ["", "{}", "[" * 100, '{"format": "ballot-ledger/roll/v1", "voters": 3}'])
def test_an_unusable_roll_is_refused_in_one_line(tmp_path: Path, content: str) -> None:
    roll = tmp_path / "roll.json"
    roll.write_text(content)
    one_line_refusal(run("credentials", "issue", "--roll", str(roll), "--out", str(tmp_path / "c.json")))
    assert not (tmp_path / "c.json").exists()


def test_an_empty_roll_issues_nothing(tmp_path: Path) -> None:
    roll = tmp_path / "roll.json"
    roll.write_text(Roll().to_json())
    assert "empty" in one_line_refusal(run("credentials", "issue", "--roll", str(roll), "--out",
                                           str(tmp_path / "c.json")))
