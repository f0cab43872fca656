"""Real processes on loopback: a follower that syncs and serves, and validator-set changes
made by authority transactions (a follower promoted, a validator removed) with the chain
finalizing throughout and the verifier following the set in force."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from ballotledger.cli import app as cli_app
from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from contracts import REGISTRY_ADDRESS, registry
from ledger.block import Block, Checkpoint, CommitCertificate
from ledger.genesis import ValidatorInfo, ValidatorSet
from ledger.validators import VALIDATOR_CHANGE_DELAY
from node.config import ConsensusTimeouts, read_key
from tests.helpers import run_cli, wait_until
from verifier.bundle import block_line
from verifier.rpc_client import RpcClient, RpcError

pytestmark = pytest.mark.integration

# A checkpoint block every second: these tests follow heights on an otherwise idle chain.
FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=100,
                        checkpoint_interval_s=1)
VALIDATORS = 4
FOLLOWER = VALIDATORS  # the follower's index in the localnet


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("valset")
    with Localnet.create(directory, validators=VALIDATORS, voters=50, timeouts=FAST, followers=1) as localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


def _call(net: Localnet, i: int, method: str, *params: object) -> object:
    with RpcClient(net.rpc_urls[i], timeout=5) as c:
        return c.call(method, *params)


def _status(net: Localnet, i: int) -> dict[str, object]:
    answer = _call(net, i, "ballot_status")
    assert isinstance(answer, dict)
    return answer


def _height(net: Localnet, i: int) -> int:
    return int(str(_status(net, i)["height"]))


def _checkpoint(net: Localnet, i: int, height: int) -> Checkpoint:
    answer = _call(net, i, "ballot_getCheckpoint", height)
    assert isinstance(answer, dict)
    return Checkpoint.decode(bytes.fromhex(answer["checkpoint"]))



def test_follower_syncs_checks_and_serves_but_never_votes(net: Localnet, tmp_path: Path) -> None:
    status = _status(net, FOLLOWER)
    assert status["role"] == "follower" and status["validator_index"] is None
    target = _height(net, 0) + 3
    wait_until(lambda: _height(net, FOLLOWER) >= target, what="the follower to follow the chain")
    # Its blocks are the validators' blocks.
    h = _height(net, FOLLOWER)
    # Its blocks are the validators' (each node keeps the certificate it saw first).
    assert _checkpoint(net, FOLLOWER, h).header == _checkpoint(net, 0, h).header
    assert int(str(_call(net, FOLLOWER, "eth_blockNumber")), 16) >= h
    # It takes no ballots: they go to a validator.
    raw = make_ballots(net.directory, 1)[0]
    with RpcClient(net.rpc_urls[FOLLOWER], timeout=5) as c, pytest.raises(RpcError) as refused:
        c.call("ballot_submit", raw.hex())
    assert refused.value.data is not None and refused.value.data.get("code") == "follower_read_only"
    # The validators count it as a follower, not a validator peer.
    assert "follower" in str(_status(net, 0)["peers"])


def _certificate_signers(net: Localnet, node: int, height: int) -> set[bytes]:
    """The keys that signed ``node``'s certificate of ``height``, by the set in force there
    (as the node tells it; the verifier's replay below checks the same from the chain)."""
    cp = _checkpoint(net, node, height)
    answer = _call(net, node, "ballot_getValidators", height)
    assert isinstance(answer, dict)
    in_force = answer["validators"]
    assert cp.header.validator_set_hash.hex() == answer["validator_set_hash"]
    cp.certificate.check(_set_of(answer), chain_id=net.genesis.chain_id, height=height, block_hash=cp.header.hash())
    return {bytes.fromhex(in_force[s.validator_index]["public_key"]) for s in cp.certificate.signatures}


def _set_of(answer: dict[str, object]) -> ValidatorSet:
    rows = answer["validators"]
    assert isinstance(rows, list)
    return ValidatorSet(tuple(ValidatorInfo(r["name"], bytes.fromhex(r["public_key"]), r["power"]) for r in rows))


def _validators_cli(*args: str | Path) -> tuple[int, str]:
    """``ballotledger validators ARGS`` in this process (the export and verify below run
    as their own processes); the exit code and what it printed."""
    result = CliRunner().invoke(cli_app, ["validators", *map(str, args)])
    return result.exit_code, result.output


def _in_force_from(output: str) -> int:
    match = re.search(r"in force from height (\d+)", output)
    assert match is not None, output
    return int(match.group(1))


def _promote(net: Localnet, index: int) -> None:
    """What an operator does once the follower's key is added: role = validator, restart."""
    path = net.configs[index]
    config = tomllib.loads(path.read_text())
    config["role"] = "validator"
    path.write_text(tomli_w.dumps(config))
    net.stop(index)
    net.start(index)
    net.wait_ready(indexes=[index])


def test_follower_becomes_a_validator_then_one_is_removed(net: Localnet, tmp_path: Path) -> None:
    """The follower's key is added by an authority transaction and, promoted, its votes are
    needed for a quorum; a removed validator's signatures stop appearing in certificates
    while the chain finalizes; the verifier replays it all and refuses a certificate
    signed by the removed key after its removal (fails when certificates are checked
    against the genesis set)."""
    authority = net.directory / "authority.key"
    follower_key = str(_status(net, FOLLOWER)["public_key"])
    code, added = _validators_cli("add", "--rpc", net.rpc_urls[0], "--authority-key", authority,
                                  "--public-key", follower_key, "--name", "follower-0")
    assert code == 0, added
    effective = _in_force_from(added)
    code, again = _validators_cli("add", "--rpc", net.rpc_urls[1], "--authority-key", authority,
                                  "--public-key", follower_key, "--name", "follower-0")
    assert code == 1 and "bad_validator_change" in again, again
    # Indexers see it as an event of the registry, with its effective height (once the
    # follower has the block that carries it: two before the effective height).
    wait_until(lambda: _height(net, FOLLOWER) >= effective - 2, what="the follower to sync the change's block")
    event = registry().events["ValidatorSetChanged"]
    query = {"fromBlock": "0x0", "toBlock": "latest", "address": "0x" + REGISTRY_ADDRESS.hex(),
             "topics": ["0x" + event.topic.hex()]}
    logs = _call(net, FOLLOWER, "eth_getLogs", query)
    assert isinstance(logs, list) and len(logs) == 1
    fields = event.decode([bytes.fromhex(t[2:]) for t in logs[0]["topics"]], bytes.fromhex(logs[0]["data"][2:]))
    assert fields["effective_height"] == effective and bytes(fields["added"]).hex() == follower_key
    assert int(logs[0]["blockNumber"], 16) + VALIDATOR_CHANGE_DELAY == effective

    _promote(net, FOLLOWER)
    wait_until(lambda: _height(net, 1) >= effective + 1, what="the set change to come into force")
    assert _status(net, FOLLOWER)["validator_index"] == VALIDATORS
    # Five validators: a quorum is four. With validator 0 stopped the chain finalizes only
    # if the new validator votes.
    net.stop(0)
    start = _height(net, 1)
    wait_until(lambda: _height(net, 1) >= start + 3, timeout=60, what="blocks without validator 0")
    key = bytes.fromhex(follower_key)
    for h in range(start + 1, start + 4):
        assert key in _certificate_signers(net, 1, h)
    net.start(0)
    net.wait_ready(indexes=[0])

    removed_key = bytes.fromhex(str(_status(net, 3)["public_key"]))
    code, removal = _validators_cli("remove", "--rpc", net.rpc_urls[1], "--authority-key", authority,
                                    "--public-key", removed_key.hex())
    assert code == 0, removal
    gone = _in_force_from(removal)
    wait_until(lambda: _height(net, 1) >= gone + 4, timeout=60, what="blocks after the removal")
    assert _set_of(_call(net, 1, "ballot_getValidators", gone - 1)).index_of(removed_key) is not None  # type: ignore[arg-type]
    for h in range(gone, gone + 4):
        assert removed_key not in _certificate_signers(net, 1, h)
    code, shown = _validators_cli("show", "--rpc", net.rpc_urls[FOLLOWER], "--height", str(gone))
    assert code == 0 and "follower-0" in shown and removed_key.hex() not in shown.replace("\n", ""), shown

    bundle = tmp_path / "bundle"
    exported = run_cli("export", "--rpc", net.rpc_urls[FOLLOWER], "--out", bundle)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    verified = run_cli("verify", bundle)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Tamper: the certificate of a block after the removal, signed by the set before it
    # (the removed validator's key at the index it had).
    keys = [read_key(p.parent / ("node.key" if p.parent.name.startswith("follower") else "validator.key"))
            for p in net.configs]
    before = _set_of(_call(net, 1, "ballot_getValidators", gone - 1))  # type: ignore[arg-type]
    by_key = {k.public_key: k for k in keys}
    lines = (bundle / "blocks.jsonl").read_text().splitlines(keepends=True)
    target = gone + 1
    obj = json.loads(lines[target - 1])
    block = bytes.fromhex(obj["block"])
    forged = CommitCertificate.create(
        [(i, by_key[v.public_key]) for i, v in enumerate(before.validators)], chain_id=net.genesis.chain_id,
        height=target, round_=0, block_hash=Block.decode(block).hash(),
    )
    lines[target - 1] = block_line(block, forged.encode())
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    (tampered / "blocks.jsonl").write_text("".join(lines))
    refused = run_cli("verify", tampered)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"block {target} certificate" in refused.stdout
