"""Compile the Vyper sources into ``contracts/artifacts/NAME.json``.

    python -m contracts.build          # rewrite the artifacts
    python -m contracts.build --check  # exit 1 if any artifact differs from a fresh build

The artifact is a pure function of the source and the pinned compiler (the sources pin
``vyper ==0.4.3``, EVM version and optimisation mode), serialised with sorted keys, so
a rebuild is byte-for-byte identical and a test can insist on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ledger.hashing import keccak256

HERE = Path(__file__).resolve().parent
SOURCES = ("ElectionRegistry", "NaiveBallotBox")


def build_artifact(name: str) -> bytes:
    """The exact bytes of ``artifacts/NAME.json`` for the current source."""
    import vyper  # type: ignore[import-untyped]
    from vyper.compiler import compile_code  # type: ignore[import-untyped]

    source = (HERE / f"{name}.vy").read_text()
    out = compile_code(
        source,
        contract_path=f"{name}.vy",
        output_formats=["abi", "bytecode", "bytecode_runtime"],
    )
    artifact = {
        "format": "ballot-ledger/contract-artifact/v1",
        "contract_name": name,
        "source": f"contracts/{name}.vy",
        "source_keccak256": keccak256(source.encode()).hex(),
        "compiler": f"vyper {vyper.__version__}",
        "abi": out["abi"],
        "bytecode": out["bytecode"],
        "bytecode_runtime": out["bytecode_runtime"],
    }
    return (json.dumps(artifact, indent=2, sort_keys=True) + "\n").encode()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in SOURCES:
        fresh = build_artifact(name)
        path = HERE / "artifacts" / f"{name}.json"
        if check:
            if not path.exists() or path.read_bytes() != fresh:
                stale.append(name)
        else:
            path.write_bytes(fresh)
            print(f"wrote {path.relative_to(HERE.parent)} ({len(fresh)} bytes)")
    if stale:
        print(f"stale artifacts: {', '.join(stale)} (run python -m contracts.build)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
