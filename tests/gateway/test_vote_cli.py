"""``ballotledger vote`` for a voter with their own key, against a real gateway in front of
4 real validators and the encrypted election ``secret-2026``: cast, audit, refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from ballotledger.cli import app
from ballotledger.localnet import Localnet
from ballotledger.roll import Roll
from ballotledger.voter_key import write_voter_key
from ledger.crypto import SigningKey
from ledger.receipt import Receipt
from tests.gateway.harness import MAIN, ROOT, SECRET, GatewayProc, Voters

pytestmark = pytest.mark.integration

PASSPHRASE = "a voter's own passphrase"
# Every choice name of secret-2026, as a whole word: none may reach a cast ballot's output.
CHOICE_WORDS = re.compile(r"\b(ada|grace|alan|yes|no)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def voters(net: Localnet) -> Voters:
    return Voters(net.directory)


@pytest.fixture(scope="module")
def kit(net: Localnet, voters: Voters, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A roll holder's files for the demo electorate (registered in reverse order, each
    with a reference), issued through the command line; voter 31's and voter 30's sealed
    key files; the pinned genesis and a passphrase file."""
    directory = tmp_path_factory.mktemp("voter-kit")
    roll = Roll()
    for i, key in reversed(list(enumerate(voters.keys))):
        roll.add(key.public_key, f"register-{i}")
    (directory / "roll.json").write_text(roll.to_json())
    issued = CliRunner().invoke(app, ["credentials", "issue", "--roll", str(directory / "roll.json"),
                                      "--out", str(directory / "credentials.json")])
    assert issued.exit_code == 0, issued.output
    election = voters.genesis.election(SECRET)
    assert election is not None
    # the list issued from the roll is exactly the one the election was defined with
    assert json.loads(issued.stdout) == {"credential_root": election.credential_root.hex(),
                                         "credential_count": election.credential_count}
    for i in (30, 31):
        write_voter_key(directory / f"voter{i}.key", voters.keys[i], PASSPHRASE, log2_n=12)
    (directory / "passphrase").write_text(PASSPHRASE + "\n")
    return {"dir": directory, "credentials": directory / "credentials.json", "genesis": voters.genesis_path,
            "passphrase": directory / "passphrase", "key": directory / "voter31.key",
            "other_key": directory / "voter30.key"}


def own_voter_args(gateway: GatewayProc, kit: dict[str, Path], *extra: str, key: str = "key") -> list[str]:
    return ["vote", "--key", str(kit[key]), "--credentials", str(kit["credentials"]), "--genesis",
            str(kit["genesis"]), "--gateway", gateway.url, "--passphrase-file", str(kit["passphrase"]), *extra]


def ballotledger(args: list[str], api_key: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command line in a process of its own, as a voter runs it."""
    return subprocess.run([sys.executable, "-m", "ballotledger", *args], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=90, input=stdin,
                          env={"BALLOTLEDGER_API_KEY": api_key, "PATH": os.environ.get("PATH", "/usr/bin:/bin")})


def post_requests(gateway: GatewayProc) -> dict[str, float]:
    """The gateway's own count of the requests it answered, by method, and of ballots accepted."""
    counts: dict[str, float] = {"POST": 0.0, "GET": 0.0, "accepted": 0.0}
    for family in text_string_to_metric_families(httpx.get(f"{gateway.url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "gateway_requests_total" and sample.labels["route"] != "/metrics":
                counts[sample.labels["method"]] = counts.get(sample.labels["method"], 0.0) + sample.value
            elif sample.name == "gateway_ballots_accepted_total":
                counts["accepted"] += sample.value
    return counts


def test_a_voter_audits_then_casts_an_encrypted_ballot(gateway: GatewayProc, voters: Voters,
                                                        kit: dict[str, Path], tmp_path: Path) -> None:
    """The audit opens its ballot, shows the selections and submits nothing (the gateway's
    own request counter: no POST, one GET more); the cast goes final with a verified
    receipt, and neither the choices nor the selection typed reach any output or log.
    Fails when --audit casts (tried: calling _cast after the audit moves the POST count)."""
    before = post_requests(gateway)
    audited = ballotledger(own_voter_args(gateway, kit, "--election", SECRET, "--select", "0:1;1:0", "--audit"),
                           gateway.keys["main"])
    assert audited.returncode == 0, audited.stderr
    after = post_requests(gateway)
    assert after["POST"] == before["POST"] and after["accepted"] == before["accepted"]
    assert after["GET"] == before["GET"] + 1  # the election's definition: the counter saw the client
    shown = json.loads(audited.stdout)
    assert shown["audit"] is True and shown["cast"] is False and shown["election_id"] == SECRET
    assert [s["selected"] for s in shown["selections"]] == [["grace"], ["yes"]]
    assert "NOT CAST" in audited.stderr
    with httpx.Client(base_url=gateway.url, headers=gateway.auth) as http:
        assert http.get(f"/v1/receipts/{shown['tracking_code']}").status_code == 404  # never reached the gateway

    receipt_file = tmp_path / "receipt.json"
    cast = ballotledger(own_voter_args(gateway, kit, "--election", SECRET, "--select", "0:1;1:0",
                                       "--out", str(receipt_file), "--timeout", "60"), gateway.keys["main"])
    assert cast.returncode == 0, cast.stderr
    answer = json.loads(cast.stdout)
    assert set(answer) == {"tracking_code", "height", "receipt"} and answer["tracking_code"] != shown["tracking_code"]
    receipt = Receipt.from_json_obj(json.loads(receipt_file.read_text()))
    receipt.verify(voters.genesis)
    assert receipt.tracking_code.hex() == answer["tracking_code"] and receipt.election_id == SECRET
    for text in (cast.stdout, cast.stderr, receipt_file.read_text(), (gateway.directory / "gateway.log").read_text()):
        assert not CHOICE_WORDS.search(text) and "0:1;1:0" not in text and PASSPHRASE not in text, text
    assert not list(tmp_path.glob("*open*")) and sorted(p.name for p in tmp_path.iterdir()) == ["receipt.json"]


def test_a_demo_voter_votes_in_the_encrypted_election(gateway: GatewayProc, net: Localnet, tmp_path: Path) -> None:
    """A demo voter of the local network, the selection read from the standard input."""
    out = tmp_path / "receipt.json"
    result = ballotledger(["vote", "--dir", str(net.directory), "--voter", "32", "--election", SECRET,
                           "--select", "-", "--gateway", gateway.url, "--out", str(out)], gateway.keys["main"],
                          stdin="0:2;1:\n")
    assert result.returncode == 0, result.stderr
    assert not CHOICE_WORDS.search(result.stdout + result.stderr)
    Receipt.from_json_obj(json.loads(out.read_text())).verify(Voters(net.directory).genesis)


def refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(("extra", "needles"), [
    (["--election", "no-such-election", "--select", "0:0;1:0"], ["unknown_election"]),
    (["--election", SECRET, "--select", "0:3;1:0"], ["contest 0", "from 0 to 2"]),
    (["--election", SECRET, "--select", "0:0,1;1:0"], ["contest 0", "the limit is 1"]),
    (["--election", SECRET, "--select", "0:0"], ["no selection for contest 1"]),
    (["--election", SECRET, "--choice", "1"], ["encrypted", "--select"]),
    (["--election", MAIN, "--select", "0:1"], ["not encrypted", "--choice"]),
    (["--election", MAIN, "--choice", "3"], ["--choice must be from 0 to 2"]),
    (["--election", MAIN, "--choice", "1", "--audit"], ["no encryption to audit"]),
    (["--election", SECRET, "--select", "0:0;1:0", "--choice", "0"], ["not both"]),
    (["--select", "0:0;1:0"], ["--election"]),
])
def test_bad_input_is_refused_in_one_line_and_nothing_is_sent(
        gateway: GatewayProc, kit: dict[str, Path], extra: list[str], needles: list[str]) -> None:
    before = post_requests(gateway)
    refused(CliRunner().invoke(app, own_voter_args(gateway, kit, *extra), env={"BALLOTLEDGER_API_KEY":
                                                                               gateway.keys["main"]}), *needles)
    assert post_requests(gateway)["POST"] == before["POST"]


def test_a_wrong_passphrase_a_stranger_and_another_roll_are_refused(
        gateway: GatewayProc, kit: dict[str, Path], tmp_path: Path) -> None:
    env = {"BALLOTLEDGER_API_KEY": gateway.keys["main"]}
    args = own_voter_args(gateway, kit, "--election", SECRET, "--select", "0:0;1:0")
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    at = args.index("--passphrase-file") + 1
    refused(CliRunner().invoke(app, [*args[:at], str(wrong), *args[at + 1:]], env=env), "wrong passphrase")

    stranger = tmp_path / "stranger.key"
    write_voter_key(stranger, SigningKey.from_seed(b"never registered"), PASSPHRASE, log2_n=10)
    at = args.index("--key") + 1
    refused(CliRunner().invoke(app, [*args[:at], str(stranger), *args[at + 1:]], env=env),
            "is not on election secret-2026's credential list")

    other = Roll()
    other.add(SigningKey.from_seed(b"another electorate").public_key)
    (tmp_path / "roll.json").write_text(other.to_json())
    assert CliRunner().invoke(app, ["credentials", "issue", "--roll", str(tmp_path / "roll.json"), "--out",
                                    str(tmp_path / "credentials.json")]).exit_code == 0
    at = args.index("--credentials") + 1
    refused(CliRunner().invoke(app, [*args[:at], str(tmp_path / "credentials.json"), *args[at + 1:]], env=env),
            "the credential list is not election secret-2026's")


def test_a_gateway_serving_another_definition_is_refused(
        gateway: GatewayProc, kit: dict[str, Path], tmp_path: Path) -> None:
    """The pinned genesis defines secret-2026 with another joint key than the gateway's: the
    client refuses before encrypting anything (a gateway's own key would read the ballots).
    Fails when fetch_election skips the comparison with the genesis (tried)."""
    obj = json.loads(kit["genesis"].read_text())
    election = next(e for e in obj["elections"] if e["id"] == SECRET)
    election["joint_key"] = SigningKey.from_seed(b"the gateway's own key").public_key.hex()
    pinned = tmp_path / "genesis.json"
    pinned.write_text(json.dumps(obj))
    args = own_voter_args(gateway, kit, "--election", SECRET, "--select", "0:0;1:0")
    at = args.index("--genesis") + 1
    refused(CliRunner().invoke(app, [*args[:at], str(pinned), *args[at + 1:]],
                               env={"BALLOTLEDGER_API_KEY": gateway.keys["main"]}), "election_mismatch")
