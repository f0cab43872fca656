"""The node process's collector settings (``node.validator.settle_heap``), in a fresh
interpreter: freezing is process-wide and must not leak into the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import gc, weakref
    from node.validator import YOUNG_COLLECTION_THRESHOLD, settle_heap

    built = [{"n": i} for i in range(50_000)]  # what a node holds for its whole life
    settle_heap()
    frozen = gc.get_freeze_count()
    assert frozen >= len(built), frozen
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD, gc.get_threshold()

    class Node:
        pass

    # Garbage made after the freeze is still found: a cycle no reference reaches.
    a, b = Node(), Node()
    a.other, b.other = b, a
    probe = weakref.ref(a)
    del a, b
    gc.collect()
    assert probe() is None, "a cycle made after settle_heap was not collected"
    # A full collection no longer walks the frozen objects.
    assert gc.get_freeze_count() == frozen
    print("ok", frozen)
    """
)


def test_settle_heap_freezes_what_the_node_built_and_still_collects_new_cycles() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
