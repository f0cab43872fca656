"""The page's checks (web/src/ledger.js, run by Node) agree with ledger/ on vectors made
by ledger/ itself: every inclusion and consistency proof of trees of 1 to 33 leaves and
tampered variants, genesis hashes of every kind of election, and receipts tampered in
each way the page must name."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.web.vectors import all_vectors

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
NODE = shutil.which("node")
pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (scripts/test needs it for the page)"),
    pytest.mark.skipif(not (WEB / "node_modules" / "@noble").is_dir(),
                       reason="web/node_modules is missing: run scripts/build_web.sh --install"),
]


def test_the_browser_checks_agree_with_the_ledger(tmp_path: Path) -> None:
    """Fails when ledger.js's Merkle steps, genesis encoding, vote digest or quorum rule
    drift from ledger/ (tried by hand: a quorum of >= 2/3 instead of > 2/3 fails the
    exactly_two_thirds case; a leaf hashed without its 0x00 prefix fails the inclusion
    vectors)."""
    vectors = all_vectors()
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps(vectors))
    result = subprocess.run([str(NODE), str(WEB / "test" / "run_vectors.mjs"), str(path)],
                            capture_output=True, text=True, timeout=120, cwd=WEB)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["inclusion"] == [v["valid"] for v in vectors["merkle"]["inclusion"]]
    assert got["consistency"] == [v["valid"] for v in vectors["merkle"]["consistency"]]
    assert got["genesis"] == [{"hash": v["hash"], "validator_set_hash": v["validator_set_hash"]}
                              for v in vectors["genesis"]]
    want = [{"name": v["name"], "ok": v["failed_check"] is None, "failed_check": v["failed_check"]}
            for v in vectors["receipts"]]
    assert got["receipts"] == want
    assert [r["failed_check"] for r in want] == [None, "inclusion", "inclusion", "quorum", "signature",
                                                 "certificate", "chain", "validator_set", "code", "quorum"]
