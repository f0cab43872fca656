"""The package layering the design depends on, checked on the source itself.

An observer's trusted code is ``ledger/`` and ``verifier/`` (with the contract engine the
replay runs): neither may import the node or the tooling, and the pure core imports no
EVM, network or CLI code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "ledger": {"node", "verifier", "contracts", "ballotledger"},
    "verifier": {"node", "ballotledger"},
    "contracts": {"node", "verifier", "ballotledger"},
}


def _imported_packages(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    bad = {str(f.relative_to(ROOT)): sorted(_imported_packages(f) & FORBIDDEN[package]) for f in files}
    assert not {f: b for f, b in bad.items() if b}
