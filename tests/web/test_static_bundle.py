"""The committed page (node/web/static) is what web/ builds: its manifest records every
source's and every output's sha256, the server refuses files that differ from it, a
rebuild with the locked packages gives the same bytes, and the page stays small."""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from node.web import MANIFEST, STATIC_DIR, StaticFilesCorrupt, WebAssets

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
PAGE_FILES = ("index.html", "observer.html", "app.css", "app.js")
PAGE_BUDGET_GZIP = 300 * 1024


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bundle_was_built_from_these_sources() -> None:
    """Fails when a file under web/ is edited without running scripts/build_web.sh."""
    manifest = json.loads(MANIFEST.read_text())
    sources = {f"src/{p.name}" for p in (WEB / "src").iterdir()} | {"build.mjs", "package.json", "package-lock.json"}
    assert set(manifest["inputs"]) == sources
    stale = [name for name, digest in manifest["inputs"].items() if _sha256(WEB / name) != digest]
    assert stale == [], f"rebuild with scripts/build_web.sh: {stale}"
    assert {name: _sha256(STATIC_DIR / name) for name in manifest["outputs"]} == manifest["outputs"]


def test_the_server_refuses_an_edited_file(tmp_path: Path) -> None:
    copy = tmp_path / "static"
    shutil.copytree(STATIC_DIR, copy)
    WebAssets(copy)
    (copy / "app.js").write_bytes((copy / "app.js").read_bytes() + b"\n")
    with pytest.raises(StaticFilesCorrupt):
        WebAssets(copy)


def test_the_page_is_under_its_size_budget() -> None:
    total = sum(len(gzip.compress((STATIC_DIR / name).read_bytes(), 9)) for name in PAGE_FILES)
    assert total < PAGE_BUDGET_GZIP, total


@pytest.mark.skipif(shutil.which("node") is None or not (WEB / "node_modules" / "esbuild").is_dir(),
                    reason="Node.js or web/node_modules missing: run scripts/build_web.sh --install")
def test_a_rebuild_gives_the_same_bytes(tmp_path: Path) -> None:
    out = tmp_path / "static"
    subprocess.run(["node", str(WEB / "build.mjs"), str(out)], cwd=WEB, check=True, capture_output=True, timeout=120)
    compare = filecmp.dircmp(out, STATIC_DIR)
    names = json.loads(MANIFEST.read_text())["outputs"]
    assert [n for n in names if (out / n).read_bytes() != (STATIC_DIR / n).read_bytes()] == []
    assert compare.left_only == compare.right_only == []
