"""Bounded JSON: deep and oversized input is refused before the parser runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import jsonbound
from ledger.errors import BadEncoding, Oversized, TooDeep
from tests.helpers import value_depth

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(), max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=30,
)



@given(json_values)
def test_depth_scan_agrees_with_the_parsed_value(value: object) -> None:
    text = json.dumps(value).encode()
    assert jsonbound.nesting_depth(text) == value_depth(value)
    assert jsonbound.loads(text, max_bytes=len(text), max_depth=max(value_depth(value), 1)) == value


@given(json_values)
def test_one_level_less_than_needed_is_refused(value: object) -> None:
    text = json.dumps(value).encode()
    if value_depth(value) >= 1:
        with pytest.raises(TooDeep):
            jsonbound.loads(text, max_bytes=len(text), max_depth=value_depth(value) - 1)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[[[[{{{{\\\"]]]]", "b": ["x\\"]}).encode()
    assert jsonbound.nesting_depth(text) == 2
    assert jsonbound.loads(text, max_bytes=1000, max_depth=2)["b"] == ["x\\"]


def test_size_is_checked_first() -> None:
    with pytest.raises(Oversized, match="rpc body: 11 bytes exceeds the limit of 10"):
        jsonbound.loads(b"[" * 11, max_bytes=10, what="rpc body")


def test_malformed_json_is_a_bad_encoding() -> None:
    with pytest.raises(BadEncoding, match="not valid JSON"):
        jsonbound.loads(b'{"a": ', max_bytes=100)
    with pytest.raises(BadEncoding):
        jsonbound.loads(b"\xff\xfe", max_bytes=100)


def test_deep_body_is_refused_in_a_process_that_imported_py_evm() -> None:
    """The crash this module exists for: with py-evm imported the recursion limit is
    100,000 and json.loads of 100,000 nested arrays overflows the C stack. Run in a child
    so that, without the bound, the crash is the child's (the test then fails on its exit
    code instead of taking pytest down)."""
    code = (
        "import sys, eth\n"
        "assert sys.getrecursionlimit() >= 100000\n"
        "from ledger import jsonbound\n"
        "from ledger.errors import TooDeep\n"
        "body = b'[' * 100000 + b']' * 100000\n"
        "try:\n"
        "    jsonbound.loads(body, max_bytes=1 << 20)\n"
        "except TooDeep as exc:\n"
        "    print(exc.code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "too_deep"


def test_unterminated_strings_scan_in_linear_time() -> None:
    import time

    body = b"[" * 40 + b'"' + b'\\"' * 400_000
    started = time.perf_counter()
    assert jsonbound.nesting_depth(body) == 40
    assert time.perf_counter() - started < 2.0  # quadratic would take minutes


def test_the_recursion_limit_is_put_back_after_py_evm_is_imported() -> None:
    """py_ecc raises the recursion limit to 100,000 when py-evm imports it; the contract
    engine puts it back to py-evm's own need, so even a parser that was never bounded
    raises RecursionError instead of overflowing the C stack (fails with the reset removed
    from contracts/engine.py: the child dies with SIGSEGV)."""
    code = (
        "import json, sys, contracts.engine\n"
        "from eth import EVM_RECURSION_LIMIT\n"
        "assert sys.getrecursionlimit() == EVM_RECURSION_LIMIT, sys.getrecursionlimit()\n"
        "try:\n"
        "    json.loads(b'[' * 100000 + b']' * 100000)\n"
        "except RecursionError:\n"
        "    print('recursion_error')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.strip() == "recursion_error"
