"""Validator and authority keys in Ethereum keystores: the file, the CLI, the node's start."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from eth_account import Account

from ballotledger.netsetup import init_single_validator
from ledger.crypto import SigningKey, address_of
from ledger.errors import BadKeyFile
from node.config import ConfigError, NodeConfig, load_node_key, write_key, write_secret
from node.keyfile import encrypt_keystore, passphrase_source, read_signing_key, write_keystore
from tests.helpers import ROOT, kit, one_line_refusal, run_cli, run_with_passphrase

KEY = SigningKey.from_seed(b"tests/keystore")
PASSPHRASE = "an operator's long passphrase"
FAST = 10  # scrypt cost for tests: the format is the same


def _keystore(path: Path, key: SigningKey = KEY, passphrase: str = PASSPHRASE) -> Path:
    write_keystore(path, key, passphrase, scrypt_log2_n=FAST)
    return path


def test_keystore_round_trip_and_interoperability(tmp_path: Path) -> None:
    path = _keystore(tmp_path / "validator.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert KEY.secret.hex() not in text and PASSPHRASE not in text
    assert read_signing_key(path, lambda: PASSPHRASE).secret == KEY.secret
    assert bytes(Account.decrypt(json.loads(text), PASSPHRASE)) == KEY.secret  # any Ethereum tool opens it
    theirs = tmp_path / "geth.json"  # and one written by eth-account itself (pbkdf2) opens here
    theirs.write_text(json.dumps(Account.encrypt(KEY.secret, PASSPHRASE, kdf="pbkdf2", iterations=1000)))
    theirs.chmod(0o600)
    assert read_signing_key(theirs, lambda: PASSPHRASE).secret == KEY.secret
    write_key(tmp_path / "plain.key", KEY)  # the plain hex form still works
    assert read_signing_key(tmp_path / "plain.key").secret == KEY.secret


def test_wrong_passphrase_is_one_line_without_the_passphrase(tmp_path: Path) -> None:
    path = _keystore(tmp_path / "validator.json")
    with pytest.raises(BadKeyFile, match="wrong passphrase") as info:
        read_signing_key(path, lambda: "not " + PASSPHRASE)
    assert PASSPHRASE not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(BadKeyFile, match="no passphrase"):
        read_signing_key(path)
    line = one_line_refusal(run_with_passphrase("xyzzy-guess", "keys", "export-public", "--key", str(path)))
    assert "wrong passphrase" in line and "xyzzy-guess" not in line


def test_loose_permissions_are_refused(tmp_path: Path) -> None:
    """Fails when ``check_owner_only`` is skipped (checked by hand once)."""
    path = _keystore(tmp_path / "validator.json")
    path.chmod(0o640)
    with pytest.raises(BadKeyFile, match="readable by others"):
        read_signing_key(path, lambda: PASSPHRASE)
    path.chmod(0o600)
    phrase = tmp_path / "passphrase"
    phrase.write_text(PASSPHRASE + "\n")
    phrase.chmod(0o644)
    with pytest.raises(BadKeyFile, match=r"passphrase file .* readable by others"):
        read_signing_key(path, passphrase_source(phrase, None, None))
    write_key(tmp_path / "plain.key", KEY)
    (tmp_path / "plain.key").chmod(0o604)
    with pytest.raises(BadKeyFile, match="chmod 600"):
        read_signing_key(tmp_path / "plain.key")


def test_a_costly_key_derivation_is_refused_before_it_runs(tmp_path: Path) -> None:
    obj = json.loads(encrypt_keystore(KEY, PASSPHRASE, scrypt_log2_n=FAST))
    obj["crypto"]["kdfparams"]["n"] = 1 << 24  # 16 GiB of scrypt
    path = tmp_path / "costly.json"
    write_secret(path, json.dumps(obj))
    asked: list[int] = []
    with pytest.raises(BadKeyFile, match="cost more than"):
        read_signing_key(path, lambda: asked.append(1) or PASSPHRASE)  # type: ignore[func-returns-value]
    assert not asked  # refused before the passphrase was even asked for


def test_passphrase_from_the_named_environment_variable(tmp_path: Path) -> None:
    path = _keystore(tmp_path / "validator.json")
    get = passphrase_source(None, "VALIDATOR_PASS", None, {"VALIDATOR_PASS": PASSPHRASE})
    assert read_signing_key(path, get).secret == KEY.secret
    with pytest.raises(BadKeyFile, match="VALIDATOR_PASS is not set"):
        read_signing_key(path, passphrase_source(None, "VALIDATOR_PASS", None, {}))
    with pytest.raises(BadKeyFile, match="no terminal"):
        read_signing_key(path, passphrase_source(None, None, None))


def test_keys_cli_new_import_export_public(tmp_path: Path) -> None:
    phrase = tmp_path / "passphrase"
    write_secret(phrase, PASSPHRASE)
    made = run_cli("keys", "new", "--out", tmp_path / "new.json", "--passphrase-file", phrase,
                   "--scrypt-log2-n", str(FAST), "--json")
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    opened = read_signing_key(tmp_path / "new.json", lambda: PASSPHRASE)
    assert shown == {"public_key": opened.public_key.hex(), "address": "0x" + address_of(opened.public_key).hex()}
    write_key(tmp_path / "plain.key", KEY)
    imported = run_cli("keys", "import", "--hex-key", tmp_path / "plain.key", "--out", tmp_path / "wrapped.json",
                       "--passphrase-file", phrase, "--scrypt-log2-n", str(FAST))
    assert imported.returncode == 0, imported.stderr
    assert read_signing_key(tmp_path / "wrapped.json", lambda: PASSPHRASE).secret == KEY.secret
    public = run_cli("keys", "export-public", "--key", tmp_path / "wrapped.json", "--passphrase-file", phrase,
                     "--json")
    assert json.loads(public.stdout)["public_key"] == KEY.public_key.hex()
    again = run_cli("keys", "new", "--out", tmp_path / "new.json", "--passphrase-file", phrase)
    assert again.returncode == 2 and "exists" in again.stderr  # a key file is never replaced
    assert PASSPHRASE not in made.stdout + made.stderr + imported.stdout + public.stdout


def _node_with_keystore(tmp_path: Path, **extra: str) -> Path:
    config_path = init_single_validator(tmp_path, kit(1).genesis, kit(1).validator_keys[0])
    node = config_path.parent
    key = read_signing_key(node / "validator.key")
    _keystore(node / "validator.json", key)
    obj = NodeConfig.load(config_path).to_obj(relative_to=node)
    config_path.write_text(tomli_w.dumps({**obj, "key_file": "validator.json", **extra}))
    return config_path


def test_node_opens_its_keystore_with_the_configured_passphrase(tmp_path: Path) -> None:
    config_path = _node_with_keystore(tmp_path, key_passphrase_file="passphrase")
    write_secret(config_path.parent / "passphrase", PASSPHRASE)
    config = NodeConfig.load(config_path)
    assert load_node_key(config).public_key == kit(1).validator_keys[0].public_key
    (config_path.parent / "passphrase").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_node_key(config)


def test_node_run_refuses_a_wrong_passphrase_in_one_line(tmp_path: Path) -> None:
    config_path = _node_with_keystore(tmp_path, key_passphrase_env="TEST_VALIDATOR_PASSPHRASE")
    env = {**os.environ, "TEST_VALIDATOR_PASSPHRASE": "xyzzy-guess"}
    result = subprocess.run([sys.executable, "-m", "ballotledger", "node", "run", "--config", str(config_path)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, stdin=subprocess.DEVNULL)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2 and len(output.splitlines()) == 1, output
    assert "wrong passphrase" in output and "xyzzy-guess" not in output


def test_authority_commands_open_a_keystore_with_the_shared_passphrase_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ballotledger.authority_cli import read_authority_key

    path = _keystore(tmp_path / "authority.json")
    monkeypatch.setenv("BALLOTLEDGER_PASSPHRASE", PASSPHRASE)
    assert read_authority_key(path).secret == KEY.secret
    monkeypatch.setenv("BALLOTLEDGER_PASSPHRASE", "xyzzy-guess")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        read_authority_key(path)


def test_a_passphrase_variable_must_be_named(tmp_path: Path) -> None:
    config_path = _node_with_keystore(tmp_path)
    obj = NodeConfig.load(config_path).to_obj(relative_to=config_path.parent)
    config_path.write_text(tomli_w.dumps({**obj, "key_passphrase_env": ""}))
    with pytest.raises(ConfigError, match="key_passphrase_env must be the name"):
        NodeConfig.load(config_path)
