"""ledger.merkle against a plain transcription of RFC 9162 section 2.1 (keccak256)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import (
    BadConsistencyProof,
    BadEncoding,
    BadInclusionProof,
    BadTreeRange,
    StoreCorrupt,
)
from ledger.hashing import keccak256


# --- reference: RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1, recursive, sharing no code with merkle ---
class Ref:
    """MTH, PATH and PROOF over a fixed list of leaves, exactly as the RFC defines them.

    Subtrees are named by leaf range [lo, hi) so that MTH can be memoised; that is the only
    liberty taken with the text.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self.mth = cache(self._mth)

    @staticmethod
    def k(n: int) -> int:
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return keccak256(b"")
        if n == 1:
            return keccak256(b"\x00" + self.leaves[lo])
        k = self.k(n)
        return keccak256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def root(self, n: int) -> bytes:
        return self.mth(0, n)

    def path(self, m: int, n: int, lo: int = 0) -> list[bytes]:
        """PATH(m, D[lo:lo+n])."""
        if n == 1:
            return []
        k = self.k(n)
        if m < k:
            return [*self.path(m, k, lo), self.mth(lo + k, lo + n)]
        return [*self.path(m - k, n - k, lo + k), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]); the RFC leaves m = 0 and m = n without a proof: empty."""
        if m in (0, n):
            return []
        return self.subproof(m, n, True)

    def subproof(self, m: int, n: int, b: bool, lo: int = 0) -> list[bytes]:
        """SUBPROOF(m, D[lo:lo+n], b)."""
        if m == n:
            return [] if b else [self.mth(lo, lo + n)]
        k = self.k(n)
        if m <= k:
            return [*self.subproof(m, k, b, lo), self.mth(lo + k, lo + n)]
        return [*self.subproof(m - k, n - k, False, lo + k), self.mth(lo, lo + k)]


# Reference verifiers: rebuild the root(s) by walking the same recursions as PATH and
# SUBPROOF, taking each level's sibling from the end of the proof. A proof verifies iff
# the rebuilt roots equal the claimed ones.
def ref_inclusion_ok(lh: bytes, m: int, n: int, proof: list[bytes], rt: bytes) -> bool:
    def walk(m: int, n: int, proof: list[bytes]) -> bytes | None:
        if n == 1:
            return lh if not proof else None
        if not proof:
            return None
        k, last = Ref.k(n), proof[-1]
        if m < k:
            below = walk(m, k, proof[:-1])
            return None if below is None else keccak256(b"\x01" + below + last)
        below = walk(m - k, n - k, proof[:-1])
        return None if below is None else keccak256(b"\x01" + last + below)

    if not 0 <= m < n or any(len(p) != 32 for p in proof):
        return False
    return walk(m, n, proof) == rt


def ref_consistency_ok(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]) -> bool:
    def walk(m: int, n: int, b: bool, proof: list[bytes]) -> tuple[bytes, bytes] | None:
        if m == n:
            if b:
                return (r1, r1) if not proof else None
            return (proof[0], proof[0]) if len(proof) == 1 else None
        if not proof:
            return None
        k, last = Ref.k(n), proof[-1]
        if m <= k:  # the old tree lies within the left part
            below = walk(m, k, b, proof[:-1])
            return None if below is None else (below[0], keccak256(b"\x01" + below[1] + last))
        below = walk(m - k, n - k, False, proof[:-1])
        if below is None:
            return None
        return keccak256(b"\x01" + last + below[0]), keccak256(b"\x01" + last + below[1])

    if not 0 <= m <= n or any(len(p) != 32 for p in proof):
        return False
    if m == 0:  # a prefix of anything, but two empty trees must agree on the root
        return not proof and r1 == keccak256(b"") and (n > 0 or r2 == r1)
    if m == n:
        return not proof and r1 == r2
    return walk(m, n, True, proof) == (r1, r2)


def sized_lists(max_size: int) -> st.SearchStrategy[list[bytes]]:
    """Leaf lists with a size drawn uniformly (plain st.lists favours short lists); short
    leaves so that repeated leaves, hence repeated subtrees, are common."""
    return st.integers(0, max_size).flatmap(
        lambda n: st.lists(st.binary(max_size=4), min_size=n, max_size=n)
    )


leaf_lists = sized_lists(70)
small_leaf_lists = sized_lists(40)


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def put(proof: list[bytes], j: int, h: bytes) -> list[bytes]:
    """proof with element j replaced by h."""
    return [*proof[:j], h, *proof[j + 1 :]]


def frontier_reader(leaves: Sequence[bytes]) -> tuple[merkle.MerkleFrontier, merkle.DictHashReader]:
    f = merkle.MerkleFrontier()
    reader = merkle.DictHashReader()
    for d in leaves:
        reader.add(f.append(merkle.leaf_hash(d)))
    return f, reader


# --- known answers: the domain prefixes -------------------------------------------------
def test_domain_prefixes() -> None:
    a, b = b"alice", b"bob"
    assert merkle.EMPTY_ROOT == keccak256(b"") == merkle.root([])
    assert merkle.leaf_hash(a) == keccak256(b"\x00" + a)
    assert merkle.root([a]) == keccak256(b"\x00" + a)
    la, lb = keccak256(b"\x00" + a), keccak256(b"\x00" + b)
    assert merkle.node_hash(la, lb) == keccak256(b"\x01" + la + lb)
    assert merkle.root([a, b]) == keccak256(b"\x01" + la + lb)
    lc = keccak256(b"\x00c")
    # n = 3 splits at k = 2 (RFC 9162 2.1.1)
    assert merkle.root([a, b, b"c"]) == keccak256(b"\x01" + keccak256(b"\x01" + la + lb) + lc)


# --- list-based functions ---------------------------------------------------------------
@settings()
@given(leaf_lists)
def test_list_functions_match_reference(leaves: list[bytes]) -> None:
    ref = Ref(leaves)
    n = len(leaves)
    assert merkle.root(leaves) == ref.root(n)
    for i in range(n):
        assert merkle.inclusion_proof(leaves, i) == ref.path(i, n)
    for m in range(n + 1):
        assert merkle.consistency_proof(leaves, m) == ref.proof(m, n)


def test_list_functions_reject_out_of_range() -> None:
    leaves = [b"a", b"b", b"c"]
    for i in (-1, 3, 4):
        with pytest.raises(BadTreeRange):
            merkle.inclusion_proof(leaves, i)
    for m in (-1, 4):
        with pytest.raises(BadTreeRange):
            merkle.consistency_proof(leaves, m)
    with pytest.raises(BadTreeRange):
        merkle.inclusion_proof([], 0)


# --- frontier and stored-subtree proofs -------------------------------------------------
@settings()
@given(leaf_lists)
def test_frontier_root_at_every_size(leaves: list[bytes]) -> None:
    ref = Ref(leaves)
    f = merkle.MerkleFrontier()
    assert f.root() == ref.root(0)
    for n, d in enumerate(leaves, 1):
        nodes = f.append(merkle.leaf_hash(d))
        assert f.size == n
        assert f.root() == ref.root(n)
        # the nodes finished by leaf n - 1 are the ones whose range ends at n
        assert nodes[0] == (0, n - 1, merkle.leaf_hash(d))
        for level, index, h in nodes:
            assert (index + 1) << level == n
            assert h == ref.mth(index << level, n)
        assert len(nodes) == 1 + ((n - 1) ^ n).bit_length() - 1
        # peaks are the 1 bits of n, biggest first
        spans = [1 << b for b in reversed(range(n.bit_length())) if n >> b & 1]
        starts = [sum(spans[:j]) for j in range(len(spans))]
        assert list(f.peaks) == [ref.mth(s, s + w) for s, w in zip(starts, spans, strict=True)]


@settings()
@given(leaf_lists)
def test_extend_equals_appends(leaves: list[bytes]) -> None:
    hashes = [merkle.leaf_hash(d) for d in leaves]
    a, b = merkle.MerkleFrontier(), merkle.MerkleFrontier()
    nodes = [x for h in hashes for x in a.append(h)]
    assert b.extend(hashes) == nodes
    assert a == b and a.root() == b.root()


@settings()
@given(leaf_lists)
def test_proofs_from_stored_subtrees(leaves: list[bytes]) -> None:
    ref = Ref(leaves)
    n = len(leaves)
    _, reader = frontier_reader(leaves)
    for size in range(n + 1):
        assert merkle.root_from(reader, size) == ref.root(size)
        for i in range(size):
            assert merkle.inclusion_proof_from(reader, i, size) == ref.path(i, size)
        for m in range(size + 1):
            assert merkle.consistency_proof_from(reader, m, size) == ref.proof(m, size)


def test_stored_proof_ranges() -> None:
    _, reader = frontier_reader([b"a", b"b", b"c"])
    with pytest.raises(BadTreeRange):
        merkle.inclusion_proof_from(reader, 3, 3)
    with pytest.raises(BadTreeRange):
        merkle.inclusion_proof_from(reader, -1, 3)
    with pytest.raises(BadTreeRange):
        merkle.consistency_proof_from(reader, 4, 3)
    with pytest.raises(BadTreeRange):
        merkle.consistency_proof_from(reader, -1, 3)
    with pytest.raises(BadTreeRange):
        merkle.root_from(reader, -1)
    with pytest.raises(BadTreeRange):  # beyond what the reader holds
        merkle.root_from(reader, 4)


def test_misbehaving_reader() -> None:
    class Short:
        def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
            return [b"\x00" * 32 for _ in ids][1:]

    class Stubby:
        def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
            return [b"\x00" * 31 for _ in ids]

    for reader in (Short(), Stubby()):
        with pytest.raises(StoreCorrupt):
            merkle.inclusion_proof_from(reader, 3, 7)


class RecordingReader:
    """Fake store of a 10M-leaf log: deterministic fake hashes, records every read."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []

    def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        self.calls.append(list(ids))
        return [keccak256(b"%d/%d" % i) for i in ids]


class UniformReader:
    """A real tree whose leaves are all equal: node (level, j) depends only on level."""

    def __init__(self, leaf: bytes) -> None:
        self.by_level = [keccak256(b"\x00" + leaf)]
        for _ in range(64):
            h = self.by_level[-1]
            self.by_level.append(keccak256(b"\x01" + h + h))

    def read_hashes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.by_level[level] for level, _ in ids]


BIG = 10_000_000
BIG_INDICES = [0, 1, 2**23 - 1, 2**23, 2**23 + 1, BIG // 2, BIG - 2, BIG - 1, 1234567]


def test_stored_proof_reads_are_logarithmic() -> None:
    bound = 2 * math.ceil(math.log2(BIG)) + 2
    for i in BIG_INDICES:
        reader = RecordingReader()
        proof = merkle.inclusion_proof_from(reader, i, BIG)
        assert len(reader.calls) == 1
        ids = reader.calls[0]
        assert len(ids) <= bound
        assert len(set(ids)) == len(ids)
        assert ids == merkle.inclusion_proof_ids(i, BIG)
        assert len(proof) == len(merkle.inclusion_proof_plan(i, BIG))
        # every id names a complete subtree inside the tree
        assert all((j + 1) << level <= BIG for level, j in ids)
    for old in (1, 2**23 - 1, 2**23, 2**23 + 1, BIG // 2, BIG - 1):
        reader = RecordingReader()
        merkle.consistency_proof_from(reader, old, BIG)
        assert len(reader.calls) == 1 and len(reader.calls[0]) <= bound
    reader = RecordingReader()
    merkle.root_from(reader, BIG)
    assert reader.calls == [merkle.root_ids(BIG)]
    assert len(reader.calls[0]) == BIG.bit_count()


def test_big_tree_proofs_verify() -> None:
    leaf = b"same"
    reader = UniformReader(leaf)
    new_root = merkle.root_from(reader, BIG)
    for i in BIG_INDICES:
        proof = merkle.inclusion_proof_from(reader, i, BIG)
        merkle.verify_inclusion(leaf, i, BIG, proof, new_root)
        with pytest.raises(BadInclusionProof):
            merkle.verify_inclusion(leaf, i, BIG, proof, flip(new_root))
    for old in (1, 2**23 - 1, 2**23, 2**23 + 1, BIG // 2, BIG - 1):
        proof = merkle.consistency_proof_from(reader, old, BIG)
        merkle.verify_consistency(old, BIG, merkle.root_from(reader, old), new_root, proof)


# --- verification -----------------------------------------------------------------------
@settings()
@given(small_leaf_lists.filter(bool), st.data())
def test_verify_inclusion(leaves: list[bytes], data: st.DataObject) -> None:
    ref = Ref(leaves)
    n = len(leaves)
    size = data.draw(st.integers(1, n), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, proof, rt = leaves[index], ref.path(index, size), ref.root(size)
    merkle.verify_inclusion(leaf, index, size, proof, rt)
    merkle.verify_inclusion_hash(merkle.leaf_hash(leaf), index, size, proof, rt)

    def bad(*args: object) -> None:
        with pytest.raises(BadInclusionProof):
            merkle.verify_inclusion(*args)  # type: ignore[arg-type]

    bad(leaf + b"x", index, size, proof, rt)
    bad(leaf, index, size, proof, flip(rt))
    bad(leaf, index, size, proof, rt[:31])
    for j in range(len(proof)):
        for bit in (0, 7):
            bad(leaf, index, size, put(proof, j, flip(proof[j], bit)), rt)
        bad(leaf, index, size, proof[:j] + proof[j + 1 :], rt)
        bad(leaf, index, size, put(proof, j, proof[j][:31]), rt)
        bad(leaf, index, size, put(proof, j, proof[j] + b"\x00"), rt)
    bad(leaf, index, size, [*proof, rt], rt)
    bad(leaf, index, size, [rt, *proof], rt)
    # Another index or size can verify: proof hashes are opaque, so the proof for leaf 0
    # of [a, b, c] also "proves" leaf 0 of a 4-leaf tree whose right half hashes to
    # leaf_hash(c), and repeated leaves make repeated subtrees. Whatever is claimed,
    # the verdict must be the reference verifier's.
    lh = merkle.leaf_hash(leaf)
    for other in range(-1, size + 2):
        for other_size in range(-1, n + 3):
            if ref_inclusion_ok(lh, other, other_size, proof, rt):
                merkle.verify_inclusion(leaf, other, other_size, proof, rt)
            else:
                assert (other, other_size) != (index, size)
                bad(leaf, other, other_size, proof, rt)


def test_verify_inclusion_messages() -> None:
    leaves = [bytes([i]) for i in range(10)]
    proof = merkle.inclusion_proof(leaves, 3)
    rt = merkle.root(leaves)
    with pytest.raises(BadInclusionProof, match="outside a tree of size 10"):
        merkle.verify_inclusion(leaves[3], 10, 10, proof, rt)
    with pytest.raises(BadInclusionProof, match=r"proof has 3 hashes; .* needs 4"):
        merkle.verify_inclusion(leaves[3], 3, 10, proof[:3], rt)
    with pytest.raises(BadInclusionProof, match="proof hash 2 is 31 bytes"):
        merkle.verify_inclusion(leaves[3], 3, 10, put(proof, 2, b"\x00" * 31), rt)
    with pytest.raises(BadInclusionProof, match="yields root") as e:
        merkle.verify_inclusion(leaves[4], 3, 10, proof, rt)
    assert e.value.code == "bad_inclusion_proof"


@settings()
@given(small_leaf_lists, st.data())
def test_verify_consistency(leaves: list[bytes], data: st.DataObject) -> None:
    ref = Ref(leaves)
    n = len(leaves)
    new = data.draw(st.integers(0, n), label="new_size")
    old = data.draw(st.integers(0, new), label="old_size")
    proof, r1, r2 = ref.proof(old, new), ref.root(old), ref.root(new)
    merkle.verify_consistency(old, new, r1, r2, proof)

    def bad(*args: object) -> None:
        with pytest.raises(BadConsistencyProof):
            merkle.verify_consistency(*args)  # type: ignore[arg-type]

    if 0 < old < new:  # an empty old tree, or an equal one, says nothing of r2
        bad(old, new, r1, flip(r2), proof)
    if old != 0:
        bad(old, new, flip(r1), r2, proof)
    bad(old, new, r1, r2, [*proof, r2])
    bad(old, new, r1, r2, [r1, *proof])
    for j in range(len(proof)):
        for bit in (0, 7):
            bad(old, new, r1, r2, put(proof, j, flip(proof[j], bit)))
        bad(old, new, r1, r2, proof[:j] + proof[j + 1 :])
        bad(old, new, r1, r2, put(proof, j, proof[j][:31]))
    # As for inclusion, other sizes may verify (an empty old tree is a prefix of any
    # tree, and proof hashes are opaque); the verdict must be the reference verifier's.
    for m in range(-1, n + 3):
        for other in range(-1, n + 3):
            if ref_consistency_ok(m, other, r1, r2, proof):
                merkle.verify_consistency(m, other, r1, r2, proof)
            else:
                bad(m, other, r1, r2, proof)


def test_verify_consistency_edge_cases() -> None:
    leaves = [bytes([i]) for i in range(7)]
    r3, r7 = merkle.root(leaves[:3]), merkle.root(leaves)
    merkle.verify_consistency(0, 7, merkle.EMPTY_ROOT, r7, [])
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    merkle.verify_consistency(7, 7, r7, r7, [])
    with pytest.raises(BadConsistencyProof, match="must be empty"):
        merkle.verify_consistency(7, 7, r7, r7, [r7])
    with pytest.raises(BadConsistencyProof, match="different roots"):
        merkle.verify_consistency(7, 7, r7, r3, [])
    with pytest.raises(BadConsistencyProof, match="empty tree"):
        merkle.verify_consistency(0, 7, r3, r7, [])
    with pytest.raises(BadConsistencyProof, match="not within"):
        merkle.verify_consistency(7, 3, r7, r3, [])
    proof = merkle.consistency_proof(leaves, 3)
    merkle.verify_consistency(3, 7, r3, r7, proof)
    with pytest.raises(BadConsistencyProof, match="need"):
        merkle.verify_consistency(3, 7, r3, r7, proof[:-1])
    with pytest.raises(BadConsistencyProof, match="old root"):
        merkle.verify_consistency(3, 7, flip(r3), r7, proof)
    with pytest.raises(BadConsistencyProof, match="new root"):
        merkle.verify_consistency(3, 7, r3, flip(r7), proof)


# --- frontier encoding ------------------------------------------------------------------
@settings()
@given(leaf_lists)
def test_frontier_round_trip(leaves: list[bytes]) -> None:
    f, _ = frontier_reader(leaves)
    data = f.to_bytes()
    assert len(data) == 8 + 32 * len(leaves).bit_count()
    assert data[:8] == len(leaves).to_bytes(8, "big")
    g = merkle.MerkleFrontier.from_bytes(data)
    assert g == f and g.size == f.size and g.peaks == f.peaks and g.root() == f.root()
    assert g.to_bytes() == data
    # a copy is independent of the original
    c = f.copy()
    assert c == f
    c.append(merkle.leaf_hash(b"more"))
    assert c != f and f.size == len(leaves) and c.size == len(leaves) + 1
    assert f.root() == merkle.root(leaves)
    # truncated or extended encodings are refused
    for cut in range(1, min(len(data), 70) + 1):
        with pytest.raises(BadEncoding):
            merkle.MerkleFrontier.from_bytes(data[:-cut])
    for extra in (b"\x00", b"\x00" * 31, b"\x00" * 32, b"\x00" * 64):
        with pytest.raises(BadEncoding):
            merkle.MerkleFrontier.from_bytes(data + extra)


def test_frontier_rejects_inconsistent_peak_counts() -> None:
    h = b"\x11" * 32
    for size, count in [(0, 1), (1, 0), (1, 2), (3, 1), (3, 3), (4, 2), (2**64 - 1, 1)]:
        data = size.to_bytes(8, "big") + h * count
        with pytest.raises(BadEncoding, match="peaks"):
            merkle.MerkleFrontier.from_bytes(data)
        with pytest.raises(BadEncoding):
            merkle.MerkleFrontier(size, [h] * count)
    for data in (b"", b"\x00" * 7):
        with pytest.raises(BadEncoding):
            merkle.MerkleFrontier.from_bytes(data)
    with pytest.raises(BadEncoding):
        merkle.MerkleFrontier(1, [b"\x11" * 31])
    with pytest.raises(BadEncoding):
        merkle.MerkleFrontier().append(b"\x11" * 31)
    assert merkle.MerkleFrontier.from_bytes(b"\x00" * 8) == merkle.MerkleFrontier()
    assert merkle.MerkleFrontier().root() == merkle.EMPTY_ROOT


def test_frontier_root_cache_and_equality() -> None:
    f = merkle.MerkleFrontier()
    f.append(merkle.leaf_hash(b"a"))
    r1 = f.root()
    assert f.root() is r1  # cached
    f.append(merkle.leaf_hash(b"b"))
    assert f.root() == merkle.root([b"a", b"b"]) != r1
    assert f != object() and f != merkle.MerkleFrontier()
    with pytest.raises(TypeError):
        hash(f)


# --- VerifiedPaths: the cached verifier accepts and refuses exactly what the plain one does
@given(st.integers(1, 300), st.integers(0, 8), st.data())
def test_verified_paths_agree_with_plain_verification(size: int, cut: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    tree_root = merkle.root(leaves)
    cache = merkle.VerifiedPaths(size, tree_root, cut=cut)
    for _ in range(30):
        index = data.draw(st.integers(0, size - 1))
        proof = merkle.inclusion_proof(leaves, index)
        leaf = leaves[index]
        if proof and data.draw(st.booleans()):
            pos = data.draw(st.integers(0, len(proof) - 1))
            proof[pos] = bytes(b ^ 1 for b in proof[pos])
        if data.draw(st.booleans()):
            leaf = data.draw(st.sampled_from(leaves))
        plain_ok = cache_ok = True
        try:
            merkle.verify_inclusion(leaf, index, size, proof, tree_root)
        except BadInclusionProof:
            plain_ok = False
        try:
            cache.verify(leaf, index, proof)
        except BadInclusionProof:
            cache_ok = False
        assert plain_ok == cache_ok
        # the same proof as RLP lays it out in a ballot: each hash after a prefix byte
        packed_ok = True
        try:
            cache.verify_packed(leaf, index, b"".join(b"\xa0" + p for p in proof), stride=33)
        except BadInclusionProof:
            packed_ok = False
        assert packed_ok == plain_ok


def test_verified_paths_skip_proven_upper_levels() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(1024)]
    cache = merkle.VerifiedPaths(1024, merkle.root(leaves), cut=4)
    for index in range(1024):
        cache.verify(leaves[index], index, merkle.inclusion_proof(leaves, index))
    assert cache.hits == 1024 - 1024 // 16  # one full check per 16-leaf subtree
    bad = merkle.inclusion_proof(leaves, 5)
    bad[-1] = bytes(32)  # a wrong upper sibling after a known lower path is still refused
    with pytest.raises(BadInclusionProof):
        cache.verify(leaves[5], 5, bad)


def test_packed_proof_shape_is_checked() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(8)]
    cache = merkle.VerifiedPaths(8, merkle.root(leaves))
    packed = b"".join(merkle.inclusion_proof(leaves, 3))
    cache.verify_packed(leaves[3], 3, packed, stride=32)
    with pytest.raises(BadInclusionProof, match="whole number"):
        cache.verify_packed(leaves[3], 3, packed[:-1], stride=32)
    with pytest.raises(BadInclusionProof, match="needs 3"):
        cache.verify_packed(leaves[3], 3, packed[:64], stride=32)
    with pytest.raises(BadInclusionProof, match="outside"):
        cache.verify_packed(leaves[3], 8, packed, stride=32)
