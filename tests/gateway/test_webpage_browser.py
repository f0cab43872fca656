"""The page in a real headless Chromium against a real gateway and four real validators:
a real ballot's receipt checks green in the browser; a tampered proof, a wrong code, a
checkpoint with too few signatures and a forged signature each show a red failure naming
the check; the observer view checks its checkpoint and its consistency with the one the
browser saved; /docs works with every request outside the gateway blocked; Korean and
English; keyboard only; no serious or critical axe-core violations. Screenshots and axe
reports are kept under test-output/webpage/. Tried by hand: with the inclusion check
taken out of web/src/ledger.js, the tampered proof shows green and its test fails."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from ballotledger.localnet import Localnet
from ledger.block import Checkpoint
from ledger.hashing import keccak256
from node.gateway.client import GatewayClient
from tests.gateway.harness import CLOSED, FUTURE, MAIN, GatewayProc, Voters
from tests.web.browser import ARTIFACTS, AXE, CHROMIUM_FLAGS, chromium_path, why_no_browser

REASON = why_no_browser()
pytestmark = [pytest.mark.integration, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

if REASON is None:
    from playwright.sync_api import Browser, Page, Route, sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", bypass_csp=False)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="module")
def final_code(gateway: GatewayProc, net: Localnet) -> str:
    """A ballot final in a log of at least three, so its inclusion proof is not empty."""
    voters = Voters(net.directory)
    raws = [voters.ballot(i, i % 3) for i in (350, 351, 352)]
    with GatewayClient(gateway.url, gateway.keys["main"]) as client:
        for raw in raws:
            client.submit(MAIN, raw)
        for raw in raws:
            client.wait_final(keccak256(raw).hex(), timeout=30)
    return keccak256(raws[1]).hex()


def check_code(page: Page, url: str, code: str) -> dict[str, Any]:
    page.goto(f"{url}/receipt")
    page.fill("#code", code)
    page.click("#check")
    page.wait_for_selector("#result[data-verdict]:not([data-verdict='working'])", timeout=15_000)
    return page.eval_on_selector("#result", "r => ({...r.dataset, text: r.innerText})")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def tamper_receipt(page: Page, change: Any) -> None:
    """Serve the real receipt with ``change`` applied to it, as a lying server would."""

    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        if body.get("status") == "final":
            change(body["receipt"])
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/receipts/*", handle)


def test_a_real_receipt_checks_green(page: Page, gateway: GatewayProc, final_code: str) -> None:
    result = check_code(page, gateway.url, final_code)
    shot(page, "receipt-final")
    assert result["verdict"] == "final", result["text"]
    assert "failedCheck" not in result
    checks = page.eval_on_selector_all("#checks li", "items => items.map(i => [i.className, i.dataset.check])")
    assert [c for _, c in checks] == ["format", "code", "chain", "quorum", "inclusion", "block"]
    assert all(cls == "ok" for cls, _ in checks)
    assert "Block height" in result["text"] and "Block time" in result["text"]
    assert float(result["elapsedMs"]) < 5000


def test_a_tampered_proof_fails_the_inclusion_check(page: Page, gateway: GatewayProc, final_code: str) -> None:
    def flip(receipt: dict[str, Any]) -> None:
        first = receipt["inclusion_proof"][0]
        receipt["inclusion_proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]

    tamper_receipt(page, flip)
    result = check_code(page, gateway.url, final_code)
    shot(page, "receipt-tampered-proof")
    assert result["verdict"] == "failed" and result["failedCheck"] == "inclusion", result["text"]
    assert "does NOT check out" in result["text"] and "Failed check" in result["text"]
    assert page.eval_on_selector("#verdict", "e => getComputedStyle(e).color") == "rgb(164, 22, 26)"  # red


def test_a_wrong_code_is_not_found(page: Page, gateway: GatewayProc) -> None:
    result = check_code(page, gateway.url, secrets.token_hex(32))
    shot(page, "receipt-wrong-code")
    assert result["verdict"] == "notfound" and result["failedCheck"] == "found"
    result = check_code(page, gateway.url, "not a code")
    assert result["verdict"] == "failed" and result["failedCheck"] == "format"


def test_a_server_answering_for_another_code_is_caught(page: Page, gateway: GatewayProc, final_code: str) -> None:
    other = secrets.token_hex(32)
    page.route(f"**/v1/receipts/{other}", lambda route: route.fulfill(
        response=route.fetch(url=route.request.url.replace(other, final_code))))
    result = check_code(page, gateway.url, other)
    assert result["verdict"] == "failed" and result["failedCheck"] == "code", result["text"]


def test_a_forged_checkpoint_fails_the_quorum_check(page: Page, gateway: GatewayProc, final_code: str) -> None:
    def strip(receipt: dict[str, Any]) -> None:
        cp = Checkpoint.decode(bytes.fromhex(receipt["checkpoint"]))
        cert = cp.certificate
        few = type(cert)(cert.chain_id, cert.height, cert.round, cert.block_hash, cert.signatures[:2])
        receipt["checkpoint"] = Checkpoint(cp.header, few).encode().hex()

    tamper_receipt(page, strip)
    result = check_code(page, gateway.url, final_code)
    shot(page, "receipt-too-few-signatures")
    assert result["verdict"] == "failed" and result["failedCheck"] == "quorum", result["text"]


def test_a_forged_signature_fails_the_signature_check(page: Page, gateway: GatewayProc, final_code: str) -> None:
    def forge(receipt: dict[str, Any]) -> None:
        cp = Checkpoint.decode(bytes.fromhex(receipt["checkpoint"]))
        cert = cp.certificate
        first = cert.signatures[0]
        bad = type(first)(first.validator_index, bytes([first.signature[0] ^ 1]) + first.signature[1:])
        forged = type(cert)(cert.chain_id, cert.height, cert.round, cert.block_hash, (bad, *cert.signatures[1:]))
        receipt["checkpoint"] = Checkpoint(cp.header, forged).encode().hex()

    tamper_receipt(page, forge)
    result = check_code(page, gateway.url, final_code)
    shot(page, "receipt-forged-signature")
    assert result["verdict"] == "failed" and result["failedCheck"] == "signature", result["text"]


def test_keyboard_only_and_korean(page: Page, gateway: GatewayProc, final_code: str) -> None:
    page.goto(f"{gateway.url}/receipt")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "code":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "code"
    page.keyboard.type(final_code)
    page.keyboard.press("Enter")
    page.wait_for_selector("#result[data-verdict='final']", timeout=15_000)
    page.focus("#lang")
    page.keyboard.press("Enter")
    assert page.evaluate("document.documentElement.lang") == "ko"
    assert page.inner_text("h1") == "내 투표가 기록되었는지 확인하기"
    assert "기록되어 확정됨" in page.inner_text("#verdict")
    untranslated = page.evaluate("""() => [...document.querySelectorAll('[data-i18n]')]
        .filter(e => e.textContent === e.dataset.i18n || !e.textContent.trim()).map(e => e.dataset.i18n)""")
    assert untranslated == []
    shot(page, "receipt-final-ko")
    page.reload()
    assert page.evaluate("document.documentElement.lang") == "ko"  # the choice is kept


def test_observer_checks_its_checkpoint_and_consistency(page: Page, gateway: GatewayProc, tmp_path: Any) -> None:
    from ledger.files import load_genesis
    from verifier.checkpoints import SavedCheckpoint

    page.goto(f"{gateway.url}/observer")
    page.wait_for_selector("body[data-loaded='true']", timeout=15_000)
    assert page.get_attribute("#obs-signed", "data-state") == "ok"
    assert page.get_attribute("#obs-consistency", "data-state") == "first"
    assert page.eval_on_selector_all("#validators tbody tr", "rows => rows.length") == 4
    assert page.eval_on_selector_all("#blocks tbody tr", "rows => rows.length") >= 1
    assert MAIN in page.inner_text("#elections")
    with page.expect_download() as download:
        page.click("#download")
    saved_path = tmp_path / "checkpoint.json"
    download.value.save_as(saved_path)
    genesis = load_genesis(gateway.directory.parent / "genesis.json")
    SavedCheckpoint.load(saved_path).check(genesis)  # the file `ballotledger checkpoint compare` takes
    page.wait_for_timeout(400)
    page.reload()
    page.wait_for_selector("#obs-consistency[data-state='consistent']", timeout=15_000)
    shot(page, "observer")
    # a saved checkpoint the chain does not extend (its root altered): red, and kept as evidence
    forged = json.loads(saved_path.read_text())
    forged["log_root"] = "00" * 32
    forged["checkpoint"] = forged["checkpoint"][:-2] + ("00" if forged["checkpoint"][-2:] != "00" else "01")
    page.evaluate("f => localStorage.setItem('ballot-ledger.checkpoint', JSON.stringify(f))", forged)
    page.reload()
    page.wait_for_selector("#obs-consistency[data-state='inconsistent']", timeout=15_000)
    shot(page, "observer-inconsistent")
    assert json.loads(page.evaluate("localStorage.getItem('ballot-ledger.checkpoint')")) == forged


def test_docs_work_offline(page: Page, gateway: GatewayProc) -> None:
    host = urlparse(gateway.url).netloc
    outside: list[str] = []

    def only_the_gateway(route: Route) -> None:
        if urlparse(route.request.url).netloc == host:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_gateway)
    page.goto(f"{gateway.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "ballot-ledger gateway" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() >= 10
    shot(page, "docs")
    assert outside == []


@pytest.mark.parametrize("path", ["receipt", "observer"])
def test_no_serious_accessibility_violations(browser: Browser, gateway: GatewayProc, final_code: str,
                                            path: str) -> None:
    if not AXE.exists():
        pytest.skip("web/node_modules/axe-core is missing: run scripts/build_web.sh --install")
    for lang in ("en", "ko"):
        context = browser.new_context(bypass_csp=True)  # axe is injected as a script of its own
        page = context.new_page()
        page.add_init_script(f"localStorage.setItem('ballot-ledger.lang', '{lang}')")
        page.goto(f"{gateway.url}/{path}" + (f"?code={final_code}" if path == "receipt" else ""))
        page.wait_for_selector("#result[data-verdict='final'], body[data-loaded='true']", timeout=15_000)
        page.add_script_tag(path=str(AXE))
        report = page.evaluate("""() => axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})""")
        (ARTIFACTS / f"axe-{path}-{lang}.json").write_text(json.dumps(report["violations"], indent=2))
        serious = [(v["id"], v["impact"]) for v in report["violations"] if v["impact"] in ("serious", "critical")]
        context.close()
        assert serious == [], serious


def test_a_node_serves_the_page_from_its_rpc_port(page: Page, net: Localnet, final_code: str) -> None:
    """An observer points a browser at their own node: the same page, reading its JSON-RPC."""
    node = net.rpc_urls[1]
    result = check_code(page, node, final_code)
    shot(page, "node-receipt-final")
    assert result["verdict"] == "final", result["text"]
    result = check_code(page, node, secrets.token_hex(32))
    assert result["verdict"] == "notfound"
    page.goto(f"{node}/observer")
    page.wait_for_selector("body[data-loaded='true']", timeout=15_000)
    assert page.get_attribute("#obs-signed", "data-state") == "ok"
    assert page.eval_on_selector_all("#blocks tbody tr", "rows => rows.length") >= 1
    rows = page.eval_on_selector_all("#elections tbody tr", "rows => rows.map(r => r.innerText.split('\\t'))")
    phases = {r[0]: r[2] for r in rows}
    assert phases[MAIN] == "open" and phases[CLOSED] == "closed" and phases[FUTURE] == "setup", phases
    shot(page, "node-observer")


def _handler(fn: Any, claim_too: bool) -> Any:
    return lambda route: fn(route, claim_too)


def test_the_genesis_is_held_to_the_published_hash(page: Page, gateway: GatewayProc, final_code: str) -> None:
    """A server that renames a validator in the genesis it sends: its claimed hash no
    longer matches what the browser computes (check `genesis`); one that also claims the
    new file's hash is caught by the hash the commission published (check `published`)."""
    from ledger.genesis import Genesis

    published = Genesis.from_json((gateway.directory.parent / "genesis.json").read_bytes()).hash().hex()
    page.goto(f"{gateway.url}/receipt")
    page.fill("#published", published)
    page.wait_for_selector("#published-verdict.ok")
    assert "matches" in page.inner_text("#published-verdict")
    page.fill("#code", final_code)
    page.click("#check")
    page.wait_for_selector("#result[data-verdict='final']", timeout=15_000)
    assert page.get_attribute("#checks li:nth-child(2)", "data-check") == "published"

    def rename(route: Route, claim_too: bool) -> None:
        body = route.fetch().json()
        body["genesis"]["validators"][0]["name"] = "mallory"
        if claim_too:
            body["genesis_hash"] = Genesis.from_json_obj(body["genesis"]).hash().hex()
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    for claim_too, failed in ((False, "genesis"), (True, "published")):
        page.unroute("**/v1/chain")
        page.route("**/v1/chain", _handler(rename, claim_too))
        page.goto(f"{gateway.url}/receipt")
        page.fill("#published", published)
        page.fill("#code", final_code)
        page.click("#check")
        page.wait_for_selector("#result[data-verdict='failed']", timeout=15_000)
        assert page.get_attribute("#result", "data-failed-check") == failed, page.inner_text("#result")
    shot(page, "receipt-wrong-genesis")
