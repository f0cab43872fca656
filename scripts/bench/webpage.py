"""The page's figures, in Debian's headless Chromium against a real gateway and four
real validators on loopback:

    python scripts/bench/webpage.py [--quick]

- a receipt checked in the browser: the time from pressing "Check" to the verdict, which
  covers fetching the receipt, checking its inclusion proof and the checkpoint's quorum
  signatures, and fetching and checking the ballot's own block checkpoint (the first
  check also fetches the genesis and hashes it); as the page measures it
  (``performance.now()``) and as the driver sees it;
- the same for secret ballots (two contests, five choices), which adds fetching the
  ballot and checking its seven range proofs in the browser;
- the page's static assets, compressed with gzip (what the gateway sends), and /docs';
- axe-core violations on the receipt and observer pages, in English and Korean.

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit, machine

from ledger.hashing import keccak256
from node.gateway.client import GatewayClient
from node.web import STATIC_DIR
from tests.gateway.harness import MAIN, SECRET, GatewayProc, Voters, make_network
from tests.web.browser import AXE, CHROMIUM_FLAGS, chromium_path, why_no_browser

PAGE_FILES = ("index.html", "observer.html", "app.css", "app.js")
DOCS_FILES = ("docs.html", "docs/swagger-ui-bundle.js", "docs/swagger-ui.css", "docs/docs-init.js")


def gzip_bytes(names: tuple[str, ...]) -> int:
    return sum(len(gzip.compress((STATIC_DIR / n).read_bytes(), 9)) for n in names)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about a minute: 10 receipts")
    parser.add_argument("--receipts", type=int, default=0, help="receipts to check (default 10 quick, 50 full)")
    args = parser.parse_args()
    receipts = args.receipts or (10 if args.quick else 50)
    encrypted = max(2, receipts // 2)
    reason = why_no_browser()
    if reason is not None:
        raise SystemExit(f"webpage benchmark: {reason}")
    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {"benchmark": "webpage", "quick": args.quick, "machine": machine(),
                               "receipts": receipts, "encrypted_receipts": encrypted}
    figures["page_assets_gzip_bytes"] = gzip_bytes(PAGE_FILES)
    figures["docs_assets_gzip_bytes"] = gzip_bytes(DOCS_FILES)
    with tempfile.TemporaryDirectory(prefix="bench-webpage-") as tmp:
        directory = Path(tmp) / "net"
        with make_network(directory, voters=max(50, receipts)) as net:
            net.start()
            net.wait_ready()
            gw = GatewayProc(directory / "gateway", list(net.rpc_urls))
            gw.start()
            try:
                voters = Voters(directory)
                raws = [voters.ballot(i, i % 3) for i in range(receipts)]
                secret = [secret_ballot(voters, i) for i in range(encrypted)]
                codes = [keccak256(r).hex() for r in raws]
                secret_codes = [keccak256(r).hex() for r in secret]
                with GatewayClient(gw.url, gw.keys["main"]) as client:
                    for raw in raws:
                        client.submit(MAIN, raw)
                    for raw in secret:
                        client.submit(SECRET, raw)
                    for code in codes + secret_codes:
                        client.wait_final(code, timeout=60)
                figures.update(run_browser(sync_playwright, gw.url, codes, secret_codes))
            finally:
                gw.stop()
    emit(figures)


def secret_ballot(voters: Voters, i: int) -> bytes:
    from ledger.voter import encrypted_ballot

    election = voters.genesis.election(SECRET)
    assert election is not None
    key = voters.keys[i]
    envelope, _ = encrypted_ballot(key, chain_id=voters.genesis.chain_id, election=election,
                                   proof=voters.credentials.proof(key.public_key), selected=[[i % 3], [i % 2]])
    raw: bytes = envelope.encode()
    return raw


def check_receipts(page: Any, codes: list[str]) -> tuple[list[float], list[float], dict[str, int]]:
    """Each code checked in turn on the open receipt page: (in-page ms, driver ms, verdicts)."""
    in_page: list[float] = []
    driver: list[float] = []
    verdicts: dict[str, int] = {}
    for code in codes:
        page.fill("#code", code)
        started = time.perf_counter()
        page.click("#check")
        page.wait_for_selector("#result[data-verdict]:not([data-verdict='working'])", timeout=20_000)
        driver.append((time.perf_counter() - started) * 1000)
        data = page.eval_on_selector("#result", "r => ({...r.dataset})")
        verdicts[data["verdict"]] = verdicts.get(data["verdict"], 0) + 1
        in_page.append(float(data.get("elapsedMs", "nan")))
        page.evaluate("() => { const r = document.getElementById('result'); delete r.dataset.verdict; }")
    return in_page, driver, verdicts


def run_browser(sync_playwright: Any, url: str, codes: list[str], secret_codes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(f"{url}/receipt", wait_until="load")
        out["receipt_page_load_ms"] = round((time.perf_counter() - started) * 1000, 1)
        in_page, driver, verdicts = check_receipts(page, codes)
        warm = in_page[1:] or in_page
        out.update({
            "receipt_verdicts": verdicts,
            "receipt_check_first_ms": round(in_page[0], 1),
            "receipt_check_ms_p50": percentile(warm, 0.5), "receipt_check_ms_p95": percentile(warm, 0.95),
            "receipt_check_ms_max": round(max(in_page), 1),
            "receipt_check_driver_ms_p50": percentile(driver, 0.5),
            "receipt_check_under_500ms": all(v < 500 for v in in_page),
        })
        in_page, driver, verdicts = check_receipts(page, secret_codes)
        out.update({
            "encrypted_receipt_verdicts": verdicts,
            "encrypted_receipt_check_ms_p50": percentile(in_page, 0.5),
            "encrypted_receipt_check_ms_p95": percentile(in_page, 0.95),
            "encrypted_receipt_check_ms_max": round(max(in_page), 1),
            "encrypted_receipt_check_driver_ms_p50": percentile(driver, 0.5),
            "encrypted_receipt_check_under_500ms": all(v < 500 for v in in_page),
        })
        started = time.perf_counter()
        page.goto(f"{url}/observer")
        page.wait_for_selector("body[data-loaded='true']", timeout=20_000)
        out["observer_load_ms"] = round((time.perf_counter() - started) * 1000, 1)
        page.close()
        violations: dict[str, int] = {}
        serious = 0
        for path in (f"receipt?code={codes[0]}", "observer"):
            for lang in ("en", "ko"):
                context = browser.new_context(bypass_csp=True)
                pg = context.new_page()
                pg.add_init_script(f"localStorage.setItem('ballot-ledger.lang', '{lang}')")
                pg.goto(f"{url}/{path}")
                pg.wait_for_selector("#result[data-verdict='final'], body[data-loaded='true']", timeout=20_000)
                pg.add_script_tag(path=str(AXE))
                report = pg.evaluate("""() => axe.run(document, {runOnly: {type: 'tag',
                    values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})""")
                name = f"{path.split('?')[0]}-{lang}"
                violations[name] = len(report["violations"])
                serious += sum(1 for v in report["violations"] if v["impact"] in ("serious", "critical"))
                context.close()
        out["axe_violations"] = violations
        out["axe_serious_or_critical"] = serious
        browser.close()
    return out


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    main()
