"""Keys in keystores and backup/restore, with real validator processes on loopback.

One 4-validator network: validator 3 runs from an Ethereum keystore opened with a
passphrase file and takes part in consensus; validator 1 is backed up while ballots
flow, its machine "dies" (SIGKILL), the backup is restored on a new data directory and
the node started on it catches up to the others' tip; a tampered copy of the backup is
refused. No log line of any process holds the passphrase.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from ledger.block import Block, CommitCertificate
from node.config import NodeConfig, write_secret
from tests.helpers import QUICK_TIMEOUTS, forge_stored_block, run_cli, stored_block, wait_until
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration

PASSPHRASE = "correct horse battery staple 4711"
KEYSTORE_NODE, BACKED_UP = 3, 1


def _status(net: Localnet, i: int) -> dict:  # type: ignore[type-arg]
    with RpcClient(net.rpc_urls[i], timeout=5) as c:
        return c.call("ballot_status")  # type: ignore[no-any-return]


def _wait(predicate: Callable[[], object], what: str) -> None:
    wait_until(predicate, 60.0, what, interval=0.2)

def _rewrite_config(path: Path, **changes: object) -> None:
    config = NodeConfig.load(path)
    obj = config.to_obj(relative_to=path.parent)
    obj.update(changes)
    import tomli_w

    path.write_text(tomli_w.dumps(obj))


def _signers(net: Localnet, node: int, start: int, count: int) -> set[int]:
    with RpcClient(net.rpc_urls[node]) as c:
        page = c.call("ballot_getBlocks", start, count)["blocks"]
    certificates = [CommitCertificate.decode(bytes.fromhex(b["certificate"])) for b in page]
    return {s.validator_index for c in certificates for s in c.signatures}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("net")
    Localnet.create(directory, validators=4, voters=600, timeouts=QUICK_TIMEOUTS)
    node = directory / f"node{KEYSTORE_NODE}"
    write_secret(node / "passphrase", PASSPHRASE)
    made = run_cli("keys", "import", "--hex-key", node / "validator.key", "--out", node / "validator.json",
                   "--passphrase-file", node / "passphrase", "--scrypt-log2-n", "12")
    assert made.returncode == 0, made.stdout + made.stderr
    (node / "validator.key").unlink()  # only the keystore is left
    _rewrite_config(node / "node.toml", key_file="validator.json", key_passphrase_file="passphrase")
    with Localnet(directory) as localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


def test_validator_from_a_keystore_takes_part_in_consensus(net: Localnet) -> None:
    _wait(lambda: _status(net, 0)["height"] >= 6, what="a few blocks")
    assert KEYSTORE_NODE in _signers(net, 0, 1, 6)  # its precommits are in the certificates
    assert _status(net, KEYSTORE_NODE)["validator_index"] == KEYSTORE_NODE


def test_backup_under_load_restore_and_catch_up(net: Localnet, tmp_path: Path) -> None:
    """The tampered backup's refusal fails when ``store_check`` skips the ballots' log and
    index checks (checked by hand once: the refusal then no longer names the block)."""
    ballots = make_ballots(net.directory, 600)
    stop = threading.Event()

    def load() -> None:  # ballots keep coming throughout: backup, crash, restore, catch-up
        for i in range(0, len(ballots), 20):
            if stop.is_set():
                return
            with RpcClient(net.rpc_urls[(i // 20) % 3 * 2 % 4]) as c:  # nodes 0 and 2 (1 dies)
                c.call("ballot_submitBatch", [r.hex() for r in ballots[i : i + 20]])
            time.sleep(0.1)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        _wait(lambda: _status(net, 0)["log_size"] >= 60, what="ballots under way")
        out = tmp_path / "backup"
        answer = run_cli("node", "backup", "--config", net.configs[BACKED_UP], "--out", out, "--json")
        assert answer.returncode == 0, answer.stdout + answer.stderr
        taken = json.loads(answer.stdout)
        height = taken["manifest"]["height"]
        assert height >= 1 and taken["pause_ms"] < 50  # the snapshot, not the copy, is on the loop
        assert not (out / "wal").exists() and (out / "manifest.json").exists()

        # A tampered copy: one ballot byte of a block changed, the block re-encoded whole.
        tampered = tmp_path / "tampered"
        shutil.copytree(out, tampered)
        target = next(h for h in range(1, height + 1) if Block.decode(stored_block(tampered / "db", h)).ballots)

        def forge(raw: bytes) -> bytes:
            block = Block.decode(raw)
            forged = bytearray(block.ballots[0])
            forged[-1] ^= 1
            return Block(block.header, (bytes(forged), *block.ballots[1:]), block.transactions,
                         block.last_commit).encode()

        forge_stored_block(tampered / "db", target, forge)
        refused = run_cli("node", "restore", "--from", tampered, "--data-dir", tmp_path / "bad")
        assert refused.returncode == 2 and "Traceback" not in refused.stdout + refused.stderr
        line = (refused.stdout + refused.stderr).strip()
        assert len(line.splitlines()) == 1 and f"block {target}" in line, line
        assert not (tmp_path / "bad" / "db").exists()

        # The backed-up machine dies; its backup is restored on a new data directory.
        net.kill(BACKED_UP)
        fresh = tmp_path / "restored"
        restored = run_cli("node", "restore", "--from", out, "--data-dir", fresh, "--json")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert json.loads(restored.stdout)["height"] == height
        assert (fresh / "restored.json").exists() and not (fresh / "wal").exists()
        _rewrite_config(net.configs[BACKED_UP], data_dir=str(fresh))
        net.start(BACKED_UP)
        net.wait_ready(indexes=[BACKED_UP])
        _wait(lambda: not (fresh / "restored.json").exists(), what="the restored node caught up")
    finally:
        stop.set()
        loader.join()
    tip = _status(net, 0)["height"]
    _wait(lambda: _status(net, BACKED_UP)["height"] >= tip, what="the restored node at the others' tip")
    # The same blocks; a tip's certificate may differ, since each node keeps the quorum of
    # precommits it saw first, and any 2f+1 of them certify the block.
    with RpcClient(net.rpc_urls[BACKED_UP]) as a, RpcClient(net.rpc_urls[0]) as b:
        mine, theirs = (c.call("ballot_getBlocks", tip, 1)["blocks"] for c in (a, b))
        assert [x["block"] for x in mine] == [x["block"] for x in theirs]
    assert "voting from height" in net.log_path(BACKED_UP).read_text()
    # Voting again: its precommits appear in certificates after it caught up.
    now = _status(net, 0)["height"]
    _wait(lambda: _status(net, 0)["height"] >= now + 6, what="blocks after the restore")
    assert BACKED_UP in _signers(net, 0, now + 1, 5)


def test_no_log_holds_the_passphrase(net: Localnet) -> None:
    for i in range(len(net)):
        assert PASSPHRASE not in net.log_path(i).read_text()
    config = tomllib.loads(net.configs[KEYSTORE_NODE].read_text())
    assert PASSPHRASE not in json.dumps(config)
