"""``ballotledger export``: write an election bundle from a node's RPC, resumably.

The bundle holds only what the verifier checks: ``genesis.json``, ``blocks.jsonl`` (each
block with its certificate), ``results.json`` (the result as the node publishes it, a
claim the verifier recomputes), the registry's contract artifact on chains that run
contracts, and a README describing the format.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ledger.block import Block
from ledger.errors import BadEncoding
from ledger.files import load_genesis
from ledger.genesis import Genesis
from verifier.bundle import (
    BLOCKS_FILE,
    BUNDLE_README,
    GENESIS_FILE,
    UnusableBundle,
    block_line,
    write_contract_artifacts,
)
from verifier.rpc_client import RpcClient
from verifier.verify import results_text

PAGE = 200
_CHUNK = 1 << 24


def _complete_lines(path: Path) -> int:
    """Count whole lines; drop a torn last line left by an interrupted export. Read in
    pieces: a bundle may be far larger than memory."""
    if not path.exists():
        return 0
    lines = keep = 0
    with path.open("r+b") as fh:
        while chunk := fh.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk.rfind(b"\n")
            if last >= 0:
                keep = fh.tell() - len(chunk) + last + 1
        if keep != fh.tell():
            fh.truncate(keep)
    return lines


def export_bundle(
    url: str, out: Path, *, on_progress: Callable[[int, int], None] | None = None
) -> int:
    """Append the node's committed blocks to ``out``; returns the bundle's tip height."""
    out.mkdir(parents=True, exist_ok=True)
    with RpcClient(url) as rpc:
        genesis = Genesis.from_json_obj(rpc.call("ballot_getGenesis"))
        genesis_path = out / GENESIS_FILE
        if genesis_path.exists():
            existing = load_genesis(genesis_path)
            if existing.hash() != genesis.hash():
                raise UnusableBundle(f"{out} holds a bundle of another chain ({existing.chain_id})")
        else:
            genesis_path.write_text(genesis.to_json())
        (out / "README").write_text(BUNDLE_README)
        write_contract_artifacts(out, genesis)
        blocks_path = out / BLOCKS_FILE
        height = _complete_lines(blocks_path)
        tip = rpc.call("ballot_status")["height"]
        with blocks_path.open("a") as fh:
            while height < tip:
                page = rpc.call("ballot_getBlocks", height + 1, PAGE)
                for entry in page["blocks"]:
                    block = bytes.fromhex(entry["block"])
                    if Block.decode(block).height != height + 1:
                        raise BadEncoding(f"node returned block out of order after height {height}")
                    fh.write(block_line(block, bytes.fromhex(entry["certificate"])))
                    height += 1
                fh.flush()
                os.fsync(fh.fileno())
                if on_progress is not None:
                    on_progress(height, tip)
                if not page["blocks"]:
                    break
        results = rpc.call("ballot_getResults", height)
        tmp = out / "results.json.tmp"
        tmp.write_text(results_text(results))
        tmp.replace(out / "results.json")
    return height
