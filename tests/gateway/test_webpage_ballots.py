"""The page's secret-ballot checks and its QR scanner, in a real headless Chromium against
the gateway and four real validators: a real encrypted ballot's receipt shows its proofs
checked green (through the gateway and through a node's own RPC port); a ballot changed
by the server fails the `ballot` check; and a ballot encrypting 2 that a quorum of
validators signed into a forged checkpoint (what colluding validators could show a voter)
fails the `proofs` check, naming the selection. The scanner reads a QR code of a real
tracking code from Chromium's fake camera (a y4m video made here) and the receipt checks
green. Tried by hand: with web/src/ballot.js's range proofs all taken as verified, the
forged ballot shows "Recorded and final" and its test fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ballotledger.localnet import Localnet
from ledger import merkle
from ledger.ballot import BallotEnvelope
from ledger.block import BlockHeader, Checkpoint, CommitCertificate
from ledger.encrypted_ballot import BallotContext
from ledger.hashing import ZERO_HASH, keccak256
from ledger.receipt import Receipt
from ledger.rules import ballot_context
from ledger.voter import encrypted_ballot
from node.config import read_key
from node.gateway.client import GatewayClient
from tests.crypto.helpers import forge_ballot
from tests.gateway.harness import SECRET, GatewayProc, Voters
from tests.gateway.test_webpage_browser import check_code, shot
from tests.web.browser import CHROMIUM_FLAGS, chromium_path, why_no_browser

REASON = why_no_browser() or (None if shutil.which("node") else "Node.js is not installed")
pytestmark = [pytest.mark.integration, pytest.mark.skipif(REASON is not None, reason=REASON or "")]
ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHECKS = ["format", "code", "chain", "quorum", "inclusion", "block", "ballot", "proofs"]

if REASON is None:
    from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright


@pytest.fixture(scope="module")
def voters(net: Localnet) -> Voters:
    return Voters(net.directory)


@pytest.fixture(scope="module")
def secret_codes(gateway: GatewayProc, voters: Voters) -> list[str]:
    """Two real encrypted ballots of the localnet's secret-ballot election, final."""
    election = voters.genesis.election(SECRET)
    assert election is not None
    raws = []
    for voter, picks in ((360, [[1], [0]]), (361, [[0], []])):
        key = voters.keys[voter]
        envelope, _ = encrypted_ballot(key, chain_id=voters.genesis.chain_id, election=election,
                                       proof=voters.credentials.proof(key.public_key), selected=picks)
        raws.append(envelope.encode())
    with GatewayClient(gateway.url, gateway.keys["main"]) as client:
        for raw in raws:
            client.submit(SECRET, raw)
        for raw in raws:
            client.wait_final(keccak256(raw).hex(), timeout=30)
    return [keccak256(raw).hex() for raw in raws]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US")
    pg = context.new_page()
    yield pg
    context.close()


def checks_of(page: Page) -> list[tuple[str, str]]:
    rows = page.eval_on_selector_all("#checks li", "items => items.map(i => [i.className, i.dataset.check])")
    return [(cls, check) for cls, check in rows]


def test_an_encrypted_ballot_shows_its_proofs_checked(page: Page, gateway: GatewayProc, net: Localnet,
                                                      secret_codes: list[str]) -> None:
    for url, name in ((gateway.url, "receipt-encrypted"), (net.rpc_urls[2], "node-receipt-encrypted")):
        result = check_code(page, url, secret_codes[0])
        shot(page, name)
        assert result["verdict"] == "final", result["text"]
        assert checks_of(page) == [("ok", c) for c in CHECKS]
        assert "5 selection proofs, 2 contest proofs" in result["text"]
        assert page.locator("#code-qr svg[role='img']").get_attribute("aria-label") == (
            f"QR code of the tracking code {secret_codes[0]}")


def test_a_changed_ballot_fails_the_ballot_check(page: Page, gateway: GatewayProc, secret_codes: list[str]) -> None:
    def change(route: Route) -> None:
        body = route.fetch().json()
        raw = bytearray(bytes.fromhex(body["ballot"]))
        raw[-100] ^= 1  # inside the payload: the bytes no longer hash to the code
        body["ballot"] = raw.hex()
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/ballots/*", change)
    result = check_code(page, gateway.url, secret_codes[1])
    shot(page, "receipt-encrypted-changed")
    assert result["verdict"] == "failed" and result["failedCheck"] == "ballot", result["text"]
    assert checks_of(page)[-1] == ("bad", "ballot")


def _forged_receipt(net: Localnet, voters: Voters, raw: bytes) -> tuple[Receipt, Checkpoint]:
    """A receipt for ``raw`` under a checkpoint every validator of the localnet signed:
    a one-ballot log far above the real chain (colluding validators could sign it)."""
    genesis = voters.genesis
    members = [v.public_key for v in genesis.validators.validators]
    keys = sorted(((members.index(k.public_key), k) for k in
                   (read_key(net.directory / f"node{i}" / "validator.key") for i in range(len(members)))),
                  key=lambda pair: pair[0])
    code = keccak256(raw)
    header = BlockHeader(chain_id=genesis.chain_id, height=1_000_000, time_ms=genesis.genesis_time_ms + 60_000,
                         parent_hash=ZERO_HASH, proposer=members[0], validator_set_hash=genesis.validators.hash(),
                         log_size=1, log_root=merkle.root([code]), state_root=ZERO_HASH, txs_hash=ZERO_HASH,
                         last_commit_hash=ZERO_HASH)
    certificate = CommitCertificate.create(keys, chain_id=genesis.chain_id, height=header.height, round_=0,
                                           block_hash=header.hash())
    checkpoint = Checkpoint(header, certificate)
    checkpoint.check(genesis.validators)  # a real quorum: only the proofs can tell
    receipt = Receipt(chain_id=genesis.chain_id, election_id=SECRET, tracking_code=code, log_index=0,
                      height=header.height, checkpoint=checkpoint, inclusion_proof=())
    receipt.verify(genesis)
    return receipt, checkpoint


def test_a_ballot_encrypting_two_fails_the_proofs_check(page: Page, gateway: GatewayProc, net: Localnet,
                                                         voters: Voters) -> None:
    election = voters.genesis.election(SECRET)
    assert election is not None
    liar = voters.keys[362]
    context: BallotContext = ballot_context(voters.genesis.chain_id, election, liar.public_key)
    payload = forge_ballot(context, [[0, 2, 0], [1, 0]], [[0, 1, 0], [1, 0]]).encode()
    raw = BallotEnvelope.create(liar, chain_id=voters.genesis.chain_id, election_id=SECRET,
                                proof=voters.credentials.proof(liar.public_key), payload=payload).encode()
    code = keccak256(raw).hex()
    receipt, checkpoint = _forged_receipt(net, voters, raw)
    answers: dict[str, Any] = {
        f"/v1/receipts/{code}": {"status": "final", "tracking_code": code, "receipt": receipt.to_json_obj()},
        f"/v1/ballots/{code}": {"tracking_code": code, "height": receipt.height, "log_index": 0, "ballot": raw.hex()},
        f"/v1/checkpoint?height={receipt.height}": {
            "height": receipt.height, "time_ms": checkpoint.header.time_ms, "log_size": 1,
            "log_root": checkpoint.header.log_root.hex(), "block_hash": checkpoint.header.hash().hex(),
            "checkpoint": checkpoint.encode().hex()},
    }
    served: list[str] = []

    def lie(route: Route) -> None:
        path = route.request.url[len(gateway.url):]
        served.append(path)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answers[path]))

    page.route(re.compile(r".*/v1/(receipts|ballots)/" + code + "$"), lie)
    page.route(re.compile(rf".*/v1/checkpoint\?height={receipt.height}$"), lie)
    result = check_code(page, gateway.url, code)
    shot(page, "receipt-encrypted-encrypts-two")
    assert sorted(served) == sorted(answers)
    assert result["verdict"] == "failed" and result["failedCheck"] == "proofs", result["text"]
    assert checks_of(page) == [("ok", c) for c in CHECKS[:-1]] + [("bad", "proofs")]
    assert "bad_ballot_proof at contest 0 selection 1" in result["text"]
    assert page.eval_on_selector("#verdict", "e => getComputedStyle(e).color") == "rgb(164, 22, 26)"  # red


# --- the camera ---------------------------------------------------------------------------
def qr_modules(text: str) -> list[list[bool]]:
    """The QR code of ``text``, made by the same `qr` package the page bundles."""
    script = "import('qr').then((m) => process.stdout.write(JSON.stringify(m.default(process.argv[1], 'raw', "
    script += "{ border: 4 }))))"
    out = subprocess.run(["node", "-e", script, text], cwd=WEB, capture_output=True, text=True, timeout=60, check=True)
    modules: list[list[bool]] = json.loads(out.stdout)
    return modules


def write_y4m(path: Path, modules: list[list[bool]], *, width: int = 640, height: int = 480, frames: int = 10) -> None:
    """A still picture of ``modules`` (black on white, centred) as a raw 4:2:0 video."""
    scale = min(width, height) * 9 // 10 // len(modules)
    side = scale * len(modules)
    left, top = (width - side) // 2, (height - side) // 2
    luma = bytearray(b"\xff" * (width * height))
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (top + y * scale + dy) * width + left + x * scale
                    luma[start:start + scale] = bytes(scale)
    chroma = b"\x80" * (width * height // 4)
    frame = b"FRAME\n" + bytes(luma) + chroma + chroma
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)


def test_the_scanner_reads_a_tracking_code_from_the_camera(playwright: Playwright, gateway: GatewayProc,
                                                           secret_codes: list[str], tmp_path: Path) -> None:
    video = tmp_path / "code.y4m"
    write_y4m(video, qr_modules(secret_codes[0]))
    flags = [*CHROMIUM_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-video-capture={video}"]
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=flags, headless=True)
    try:
        page = browser.new_context(locale="en-US").new_page()
        page.goto(f"{gateway.url}/receipt")
        scan = page.get_by_role("button", name="Scan a QR code")
        assert scan.get_attribute("aria-expanded") == "false"
        assert scan.get_attribute("aria-controls") == "scanner"
        scan.focus()
        page.keyboard.press("Enter")  # keyboard only
        page.wait_for_selector("#result[data-verdict='final']", timeout=20_000)
        assert page.input_value("#code") == secret_codes[0]
        assert page.get_attribute("#scan-status", "data-state") == "found"
        assert "Tracking code read from the QR code" in page.inner_text("#scan-status")
        assert page.is_hidden("#scanner") and scan.get_attribute("aria-expanded") == "false"
        assert checks_of(page) == [("ok", c) for c in CHECKS]
        shot(page, "receipt-scanned")
        page.click("#lang")
        assert page.inner_text("#scan") == "QR 코드 스캔"
        assert "QR 코드에서 추적 코드를 읽었습니다" in page.inner_text("#scan-status")
        assert page.get_attribute("#code-qr svg", "aria-label") == f"추적 코드 {secret_codes[0]}의 QR 코드"
    finally:
        browser.close()
