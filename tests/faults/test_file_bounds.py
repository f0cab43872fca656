"""Every file read from outside has a size and a depth known before it is parsed: the
bounds are honest (the widest valid file fits) and enforced (one byte or level more is
refused with a specific error naming the file)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from unittest import mock

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from ballotledger.netsetup import init_network
from ledger.block import BlockHeader, Checkpoint, CommitCertificate
from ledger.crypto import SigningKey
from ledger.errors import BadGenesis, Oversized, TooDeep
from ledger.files import load_genesis, read_bounded
from ledger.genesis import (
    MAX_CHOICE_BYTES,
    MAX_CHOICES,
    MAX_ELECTIONS,
    MAX_GENESIS_INT,
    MAX_QUESTION_BYTES,
    MAX_VALIDATOR_NAME_BYTES,
    MAX_VALIDATORS,
    Genesis,
    ValidatorInfo,
    ValidatorSet,
    max_genesis_json_bytes,
    widest_genesis,
)
from ledger.receipt import _RECEIPT_FIELDS_BYTES, MAX_PROOF_HASHES, MAX_RECEIPT_JSON_BYTES, Receipt
from node import tomlbound
from node.config import MAX_CONFIG_BYTES, ConfigError, NodeConfig
from node.gateway.config import MAX_KEYS_FILE_BYTES, GatewayConfig, GatewayConfigError, add_key, load_keys
from tests.helpers import value_depth
from verifier import export
from verifier.checkpoints import _SUMMARY_BYTES, SavedCheckpoint
from verifier.verify import max_results_bytes, results_text


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- genesis ---------------------------------------------------------------------------
def test_the_genesis_bound_is_the_size_of_the_widest_genesis() -> None:
    """Fails when a field can be wider than the bound assumes, or a validator or an
    election adds a varying number of bytes."""
    assert len(widest_genesis(3, 4).to_json()) == max_genesis_json_bytes(3, 4)
    assert len(widest_genesis(5, 2).to_json()) == max_genesis_json_bytes(5, 2)
    assert max_genesis_json_bytes() == max_genesis_json_bytes(MAX_VALIDATORS, MAX_ELECTIONS) < 64 << 20


def test_widest_genesis_reads_back() -> None:
    g = widest_genesis(2, 2)
    assert Genesis.from_json(g.to_json()).hash() == g.hash()


@pytest.mark.parametrize("change", [
    "validators", "name", "elections", "choices", "question", "choice", "contest question", "contests", "int",
    "trustees",
])
def test_each_genesis_ceiling_is_enforced(change: str) -> None:
    obj = widest_genesis(1, 1).to_json_obj()
    election, validator = obj["elections"][0], obj["validators"][0]
    plaintext = {k: v for k, v in election.items() if k not in ("contests", "joint_key", "trustees", "threshold")}
    plaintext.update(payload_scheme="plaintext-choice/v1", choices=["a"], question="q")
    if change == "validators":
        keys = [SigningKey.from_seed(f"v{i}".encode()).public_key.hex() for i in range(MAX_VALIDATORS + 1)]
        obj["validators"] = [dict(validator, public_key=k) for k in keys]
    elif change == "name":
        validator["name"] += "x"
    elif change == "elections":
        obj["elections"] = [dict(plaintext, id=f"e{i}") for i in range(MAX_ELECTIONS + 1)]
    elif change == "choices":  # one more choice than the registry counts, in all contests
        election["contests"][0]["choices"].append("x")
    elif change == "question":
        election["question"] += "x"
    elif change == "choice":
        election["contests"][0]["choices"][0] += "x"
    elif change == "contest question":
        election["contests"][0]["question"] += "x"
    elif change == "contests":
        election["contests"].append({"question": "q", "choices": ["a"], "limit": 1})
    elif change == "trustees":
        election["trustees"].append(SigningKey.from_seed(b"one too many").public_key.hex())
    else:
        obj["genesis_time_ms"] = MAX_GENESIS_INT + 1
    with pytest.raises(BadGenesis):
        Genesis.from_json_obj(obj)


def test_ceilings_count_utf8_bytes() -> None:
    too_long = "é" * (MAX_CHOICE_BYTES // 2 + 1)  # within the ceiling in characters, not in bytes
    g = widest_genesis(1, 1)
    with pytest.raises(BadGenesis):
        dataclasses.replace(g.elections[0], choices=(too_long,))
    with pytest.raises(BadGenesis):
        ValidatorSet((ValidatorInfo("é" * (MAX_VALIDATOR_NAME_BYTES // 2 + 1), g.authority, 1),))
    assert len(("q" * MAX_QUESTION_BYTES).encode()) == MAX_QUESTION_BYTES  # ASCII: one byte a character


def test_a_genesis_file_larger_than_any_genesis_is_refused_unread(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "genesis.json", 10 << 30)  # 10 GiB, no disk used; reading it would take minutes
    with pytest.raises(Oversized, match=f"genesis.json: {10 << 30} bytes exceeds the limit of"):
        load_genesis(path)


def test_a_genesis_nested_one_level_deeper_than_any_is_refused(tmp_path: Path) -> None:
    obj = widest_genesis(1, 1).to_json_obj()
    obj["elections"][0]["contests"][0]["choices"] = [["x"]]
    (tmp_path / "genesis.json").write_text(json.dumps(obj))
    with pytest.raises(TooDeep, match="nested 7 levels deep, the limit is 6"):
        load_genesis(tmp_path / "genesis.json")


def test_read_bounded_stops_at_the_limit_on_files_without_a_size() -> None:
    with pytest.raises(Oversized, match="more than 1000 bytes"):
        read_bounded(Path("/dev/zero"), 1000)  # size 0 to stat, endless to read


# --- receipts, checkpoints, results ----------------------------------------------------------
def _widest_checkpoint() -> Checkpoint:
    big = 2**256 - 1  # the widest integer the codec reads
    header = BlockHeader("c" * 64, big, big, bytes(32), bytes(33), bytes(32), big, bytes(32), bytes(32), bytes(32),
                         bytes(32))
    return Checkpoint(header, CommitCertificate("c" * 64, big, big, bytes(32), ()))


def test_the_receipt_bound_holds_the_widest_fields() -> None:
    cp = _widest_checkpoint()
    receipt = Receipt("c" * 64, "e" * 64, bytes(32), 2**256 - 1, 2**256 - 1, cp, (bytes(32),) * MAX_PROOF_HASHES)
    text = receipt.to_json()
    proof = len(json.dumps(receipt.to_json_obj()["inclusion_proof"], indent=2))
    assert len(text) - 2 * len(cp.encode()) - proof <= _RECEIPT_FIELDS_BYTES
    assert Receipt.from_json(text) == receipt
    with pytest.raises(TooDeep):
        Receipt.from_json(text.replace('"inclusion_proof": [', '"inclusion_proof": [[', 1))
    with pytest.raises(Oversized):
        Receipt.from_json(b" " * (MAX_RECEIPT_JSON_BYTES + 1))


def test_the_checkpoint_file_bound_holds_the_widest_summary(tmp_path: Path) -> None:
    cp = _widest_checkpoint()
    saved = SavedCheckpoint("c" * 64, bytes(32), cp)
    assert len(saved.to_json()) - 2 * len(cp.encode()) <= _SUMMARY_BYTES
    path = tmp_path / "cp.json"
    path.write_text(saved.to_json())
    assert SavedCheckpoint.load(path) == saved
    path.write_bytes(_nested(2))
    with pytest.raises(TooDeep, match=str(path)):
        SavedCheckpoint.load(path)
    with pytest.raises(Oversized, match=str(path)):
        SavedCheckpoint.load(_sparse(path, 4 << 20))


@pytest.mark.parametrize("plaintext", [True, False])
def test_the_results_bound_holds_the_widest_counts(plaintext: bool) -> None:
    genesis = widest_genesis(1, 3)
    if plaintext:  # the widest plaintext elections: every choice counted in the results
        genesis = dataclasses.replace(genesis, elections=tuple(
            dataclasses.replace(e, payload_scheme="plaintext-choice/v1", contests=(), joint_key=b"", trustees=(),
                                threshold=0, choices=tuple(f"{i:0128d}" for i in range(MAX_CHOICES)))
            for e in genesis.elections))
    limit = max_results_bytes(genesis)
    from ledger.tally import Tally

    obj = Tally(genesis).to_json_obj()
    obj["height"] = 2**64 - 1
    for e in obj["elections"].values():
        e.update(ballots_recorded=2**64 - 1, ballots_counted=2**64 - 1)
        if plaintext:
            e["tally"] = dict.fromkeys(e["tally"], 2**64 - 1)
    assert len(results_text(obj).encode()) == limit


# --- config files ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("net")
    init_network(out, validators=1, voters=4)
    return out


def test_node_config_deep_or_oversized_is_a_config_error(network: Path, tmp_path: Path) -> None:
    good = network / "node0" / "node.toml"
    assert NodeConfig.load(good).name == "validator-0"
    deep = tmp_path / "deep.toml"
    deep.write_bytes(good.read_bytes() + b"\nextra = " + _nested(5) + b"\n")
    with pytest.raises(ConfigError, match="nested 5 levels deep, the limit is 4"):
        NodeConfig.load(deep)
    deep.write_bytes(b"x = " + _nested(100_000))  # tomllib alone: RecursionError
    with pytest.raises(ConfigError, match="nested 100000 levels deep"):
        NodeConfig.load(deep)
    with pytest.raises(ConfigError, match=f"exceeds the limit of {MAX_CONFIG_BYTES}"):
        NodeConfig.load(_sparse(tmp_path / "big.toml", MAX_CONFIG_BYTES + 1))


def test_gateway_config_and_keys_file_deep_or_oversized(network: Path, tmp_path: Path) -> None:
    keys = tmp_path / "api_keys.json"
    config = GatewayConfig(listen="127.0.0.1:9", genesis_file=network / "genesis.json", validators=("http://x",),
                           outbox_dir=tmp_path / "outbox", api_keys_file=keys)
    path = tmp_path / "gateway.toml"
    path.write_text(tomli_w.dumps(config.to_obj()))
    assert GatewayConfig.load(path) == config
    add_key(keys, "frontend")
    assert [k.name for k in load_keys(keys).values()] == ["frontend"]

    path.write_bytes(b"[gateway]\nvalidators = " + _nested(6) + b"\n")
    with pytest.raises(GatewayConfigError, match="nested 6 levels deep"):
        GatewayConfig.load(path)
    with pytest.raises(GatewayConfigError, match="exceeds the limit"):
        GatewayConfig.load(_sparse(path, MAX_CONFIG_BYTES + 1))

    keys.write_bytes(b'{"keys": [[{}]]}')
    with pytest.raises(GatewayConfigError, match="nested 4 levels deep, the limit is 3"):
        load_keys(keys)
    with pytest.raises(GatewayConfigError, match="nested 4 levels deep"):
        add_key(keys, "another")
    with pytest.raises(GatewayConfigError, match=f"exceeds the limit of {MAX_KEYS_FILE_BYTES}"):
        load_keys(_sparse(keys, MAX_KEYS_FILE_BYTES + 1))


toml_values = st.recursive(
    st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8) | st.booleans(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=20,
)



@given(st.lists(toml_values, max_size=4))
def test_toml_depth_scan_agrees_with_the_inline_nesting(items: list[object]) -> None:
    """Strings of any text (brackets, quotes, escapes) do not count; inline arrays and
    tables do, as deep as they nest."""
    value = [0, *items]  # not all tables: written inline, not as [[a]] sections
    text = tomli_w.dumps({"a": value}).encode()
    assert tomlbound.nesting_depth(text) == value_depth(value)
    assert tomlbound.loads(text, max_bytes=len(text), max_depth=max(value_depth(value), 1)) == {"a": value}


def test_toml_strings_and_comments_hide_brackets() -> None:
    text = b'a = "[[[\\"[[" # [[[[\nb = \'[[[\'\nc = """\n[[[\\"""]]]\n"""\nd = \'\'\'[[[\'\'\'\n[t]\ne = [[1]]\n'
    assert tomlbound.nesting_depth(text) == 2
    assert tomlbound.loads(text, max_bytes=len(text), max_depth=2)["t"]["e"] == [[1]]


@pytest.mark.parametrize("data, lines, kept", [
    (b"", 0, b""), (b"torn", 0, b""), (b"a\nbb\n", 2, b"a\nbb\n"), (b"a\nbb\nccc\ndd", 3, b"a\nbb\nccc\n"),
    (b"\n" * 9 + b"x" * 7, 9, b"\n" * 9),
])
def test_a_resumed_export_counts_lines_in_pieces(tmp_path: Path, data: bytes, lines: int, kept: bytes) -> None:
    """An export resumes after its whole lines (a torn last one is dropped), reading the
    bundle in pieces (4 bytes here) rather than whole."""
    path = tmp_path / "blocks.jsonl"
    path.write_bytes(data)
    with mock.patch.object(export, "_CHUNK", 4):
        assert export._complete_lines(path) == lines
    assert path.read_bytes() == kept
