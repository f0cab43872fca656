"""The ballot log's Merkle tree: RFC 9162 section 2.1 with keccak256 in place of SHA-256.

    leaf hash  = keccak256(0x00 || leaf)
    node hash  = keccak256(0x01 || left || right)
    empty root = keccak256(b"")

For n > 1 leaves the tree splits at k, the largest power of two strictly less than n
(RFC 9162 2.1.1), so the left part is always a complete (perfect) subtree. Proofs are
lists of 32-byte hashes in the RFC's order (2.1.3.1 PATH, 2.1.4.1 PROOF/SUBPROOF) and are
checked with the RFC's iterative algorithms (2.1.3.2, 2.1.4.2).

A complete subtree is named ``(level, index)``: it is the root of leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 index i is leaf i's hash. Stores
keep exactly these nodes (emitted by :class:`MerkleFrontier`), and every proof or older
root is assembled from O(log n) of them (see :func:`inclusion_proof_from`).

This module is pure: no I/O, no clocks, no globals beyond constants.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ledger.errors import (
    BadConsistencyProof,
    BadEncoding,
    BadInclusionProof,
    BadTreeRange,
    StoreCorrupt,
)
from ledger.hashing import HASH_SIZE, keccak256, keccak_new

__all__ = [
    "EMPTY_ROOT",
    "DictHashReader",
    "HashReader",
    "MerkleFrontier",
    "Node",
    "NodeId",
    "ProofPlan",
    "VerifiedPaths",
    "assemble_proof",
    "consistency_proof",
    "consistency_proof_from",
    "consistency_proof_ids",
    "consistency_proof_plan",
    "inclusion_proof",
    "inclusion_proof_from",
    "inclusion_proof_ids",
    "inclusion_proof_plan",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from",
    "root_ids",
    "root_plan",
    "verify_consistency",
    "verify_inclusion",
    "verify_inclusion_hash",
]

NodeId = tuple[int, int]
"""``(level, index)`` of a complete subtree."""

Node = tuple[int, int, bytes]
"""``(level, index, hash)`` of a complete subtree."""

ProofPlan = list[list[NodeId]]
"""One group of complete-subtree ids per proof hash; a group folds (right to left) into it."""

_LEAF = b"\x00"  # RFC 9162 2.1.1: leaf and interior-node domains differ, so a leaf
_NODE = b"\x01"  # can never be passed off as an interior node (second-preimage defence).

EMPTY_ROOT: bytes = keccak256(b"")


def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d}) = HASH(0x00 || d)."""
    return keccak256(_LEAF + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right). Every interior node of every tree here is made by
    this function (the log's appends, roots, and both proof verifiers)."""
    digest: bytes = keccak_new(_NODE + left + right).digest()  # one call less than keccak256
    return digest


# --- tree geometry -----------------------------------------------------------------------
def _split(n: int) -> int:
    """k of RFC 9162 2.1.1: the largest power of two strictly less than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_ids(lo: int, hi: int) -> list[NodeId]:
    """The complete subtrees covering leaves [lo, hi), left to right, biggest first.

    In every range the RFC recursion produces, lo is a multiple of a power of two that is
    >= hi - lo, so this is the binary decomposition of hi - lo: at most log2(hi - lo) + 1
    ids, and MTH(D[lo:hi]) is their right-to-left fold (the left part of each RFC split is
    the biggest block).
    """
    ids: list[NodeId] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)
        ids.append((level, lo >> level))
        lo += 1 << level
    return ids


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Root of a range from its complete subtrees (left to right), folding right to left."""
    r = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        r = node_hash(hashes[i], r)
    return r


def _inclusion_proof_len(index: int, size: int) -> int:
    """Length of PATH(index, D[size]) for 0 <= index < size, in O(1).

    Below the level where index and size - 1 first differ, every level has a sibling
    ("inner" part); above it, only the levels where index has a 1 bit have a left
    sibling, the other right-border nodes being promoted unchanged (RFC 9162 2.1.3.2 4.b.ii).
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_len(old_size: int, new_size: int) -> int:
    """Length of PROOF(old_size, D[new_size]) for 0 < old_size < new_size, in O(1).

    The proof is the inclusion path of leaf old_size - 1 with the levels inside the
    largest complete subtree ending at old_size dropped (that subtree's root is one hash,
    itself omitted when it is the whole old tree: RFC 9162 2.1.4.1, SUBPROOF with b = true).
    """
    shift = (old_size & -old_size).bit_length() - 1
    seed = 0 if old_size == 1 << shift else 1
    return seed + _inclusion_proof_len(old_size - 1, new_size) - shift


# --- proofs over a list of leaves (tests, small trees) ------------------------------------
class _LevelsReader:
    """Every complete subtree of a leaf list, built level by level in O(n) hashes."""

    __slots__ = ("levels",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        level = [leaf_hash(d) for d in leaves]
        self.levels = [level]
        while len(level) > 1:
            level = [
                node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)
            ]
            self.levels.append(level)

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [self.levels[lvl][i] for lvl, i in ids]


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of raw leaves (RFC 9162 2.1.1)."""
    return root_from(_LevelsReader(leaves), len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of raw leaves (RFC 9162 2.1.3.1)."""
    _check_index(index, len(leaves))
    return inclusion_proof_from(_LevelsReader(leaves), index, len(leaves))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of raw leaves (RFC 9162 2.1.4.1); [] for old_size 0 or n."""
    _check_sizes(old_size, len(leaves))
    return consistency_proof_from(_LevelsReader(leaves), old_size, len(leaves))


# --- proofs from stored complete subtrees ------------------------------------------------
class HashReader(Protocol):
    """Where proofs read stored hashes from (the LevelDB store, or a dict in tests)."""

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """The hash of complete subtree ``(level, index)`` for each id, in order."""
        ...


class DictHashReader:
    """In-memory :class:`HashReader`: a dict ``(level, index) -> hash``.

    Feed it what :meth:`MerkleFrontier.append` returns and it can serve any proof or
    older root up to the frontier's size.
    """

    __slots__ = ("nodes",)

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self.add(nodes)

    def add(self, nodes: Iterable[Node]) -> None:
        for level, index, h in nodes:
            self.nodes[(level, index)] = h

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        nodes = self.nodes
        try:
            return [nodes[i] for i in ids]
        except KeyError as e:
            raise BadTreeRange(f"no stored hash for complete subtree {e.args[0]}") from None


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise BadTreeRange(f"leaf index {index} is outside a tree of size {size}")


def _check_sizes(old_size: int, new_size: int) -> None:
    if not 0 <= old_size <= new_size:
        raise BadTreeRange(f"old size {old_size} is not within 0..{new_size}")


def inclusion_proof_plan(index: int, size: int) -> ProofPlan:
    """Which complete subtrees make up PATH(index, D[size]), one group per proof hash.

    Walks the RFC 9162 2.1.3.1 recursion top-down without hashing. At most one group is
    an incomplete subtree (the first right sibling off the tree's right border), so the
    plan names at most 2 * ceil(log2 size) ids.
    """
    _check_index(index, size)
    plan: ProofPlan = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            plan.append(_range_ids(lo + k, hi))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k]); D[0:k] is one complete subtree
            level = k.bit_length() - 1
            plan.append([(level, lo >> level)])
            lo += k
    plan.reverse()  # the RFC lists the deepest sibling first
    return plan


def consistency_proof_plan(old_size: int, new_size: int) -> ProofPlan:
    """Which complete subtrees make up PROOF(old_size, D[new_size]) (RFC 9162 2.1.4.1).

    Empty when old_size is 0 or new_size (no proof is needed then). Like an inclusion
    plan, at most one group is incomplete: at most 2 * ceil(log2 new_size) ids.
    """
    _check_sizes(old_size, new_size)
    plan: ProofPlan = []
    if old_size == 0:
        return plan
    m = old_size  # the old tree's leaves within the current range [lo, hi)
    lo, hi = 0, new_size
    whole = True  # the b flag of SUBPROOF: still on the path of the old tree's root
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            plan.append(_range_ids(lo + k, hi))
            hi = lo + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            plan.append(_range_ids(lo, lo + k))
            lo += k
            m -= k
            whole = False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        plan.append(_range_ids(lo, hi))
    plan.reverse()
    return plan


def root_plan(size: int) -> ProofPlan:
    """The peaks of a tree of ``size`` leaves as a single group (empty for size 0)."""
    if size < 0:
        raise BadTreeRange(f"tree size {size} is negative")
    return [_range_ids(0, size)] if size else []


def _flatten(plan: ProofPlan) -> list[NodeId]:
    return [i for group in plan for i in group]


def inclusion_proof_ids(index: int, size: int) -> list[NodeId]:
    """The stored ids :func:`inclusion_proof_from` reads, in order."""
    return _flatten(inclusion_proof_plan(index, size))


def consistency_proof_ids(old_size: int, new_size: int) -> list[NodeId]:
    """The stored ids :func:`consistency_proof_from` reads, in order."""
    return _flatten(consistency_proof_plan(old_size, new_size))


def root_ids(size: int) -> list[NodeId]:
    """The stored ids :func:`root_from` reads: the peaks of ``size``."""
    return _flatten(root_plan(size))


def assemble_proof(plan: ProofPlan, hashes: Sequence[bytes]) -> list[bytes]:
    """Fold the hashes read for ``_flatten(plan)`` into one hash per group."""
    want = sum(len(g) for g in plan)
    if len(hashes) != want:
        raise StoreCorrupt(f"hash reader returned {len(hashes)} hashes for {want} ids")
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise StoreCorrupt(f"hash reader returned a {len(h)}-byte hash")
    out: list[bytes] = []
    pos = 0
    for group in plan:
        n = len(group)
        out.append(hashes[pos] if n == 1 else _fold(hashes[pos : pos + n]))
        pos += n
    return out


def _read(reader: HashReader, plan: ProofPlan) -> list[bytes]:
    ids = _flatten(plan)
    return assemble_proof(plan, reader.read_hashes(ids) if ids else [])


def inclusion_proof_from(reader: HashReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) from stored complete subtrees: one read of O(log size) ids."""
    return _read(reader, inclusion_proof_plan(index, size))


def consistency_proof_from(reader: HashReader, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) from stored complete subtrees: one read, O(log) ids."""
    return _read(reader, consistency_proof_plan(old_size, new_size))


def root_from(reader: HashReader, size: int) -> bytes:
    """MTH(D[size]) of any size the reader covers: one read of its peaks."""
    plan = root_plan(size)
    return _read(reader, plan)[0] if plan else EMPTY_ROOT


# --- verification (hot path) -------------------------------------------------------------
def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that raw ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with ``root``."""
    verify_inclusion_hash(leaf_hash(leaf), index, size, proof, root)


def _check_inclusion_shape(index: int, size: int, proof: Sequence[bytes]) -> None:
    _check_proof_length(index, size, len(proof))
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise BadInclusionProof(f"proof hash {i} is {len(p)} bytes, not {HASH_SIZE}")


def _check_proof_length(index: int, size: int, n: int) -> None:
    if not 0 <= index < size:
        raise BadInclusionProof(f"leaf index {index} is outside a tree of size {size}")
    want = _inclusion_proof_len(index, size)
    if n != want:
        raise BadInclusionProof(f"proof has {n} hashes; leaf {index} of a {size}-leaf tree needs {want}")


def _check_root(r: bytes, sn: int, index: int, size: int, root: bytes) -> None:
    # sn != 0 is unreachable after the length check, but it is the RFC's step 5.
    if sn != 0:  # pragma: no cover
        raise BadInclusionProof(f"proof is too short for a {size}-leaf tree")
    if r != root:
        raise BadInclusionProof(
            f"proof for leaf {index} of a {size}-leaf tree yields root {r.hex()}, "
            f"not {root.hex()}"
        )


def verify_inclusion_hash(
    leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2 for an already hashed leaf; raises :class:`BadInclusionProof`."""
    _check_inclusion_shape(index, size, proof)
    fn, sn, r = index, size - 1, leaf_hash_
    for p in proof:
        fn, sn, r = _inclusion_step(fn, sn, r, p)
    _check_root(r, sn, index, size, root)


def _inclusion_step(fn: int, sn: int, r: bytes, p: bytes) -> tuple[int, int, bytes]:
    """RFC 9162 2.1.3.2 step 4, one proof hash ``p``: the one implementation, which both
    inclusion verifiers call."""
    if fn & 1 or fn == sn:
        r = node_hash(p, r)
        if not fn & 1:
            # 4.b.ii: r is on the right border with no sibling on the levels up to
            # fn's lowest 1 bit; those nodes are promoted unchanged. (fn > 0 here:
            # fn == sn == 0 is excluded by the length check, the RFC's step 4.a.)
            shift = (fn & -fn).bit_length() - 1
            fn >>= shift
            sn >>= shift
    else:
        r = node_hash(r, p)
    return fn >> 1, sn >> 1, r


class VerifiedPaths:
    """Inclusion checks against one fixed tree, remembering the upper parts already proven.

    Accepts and refuses exactly what :func:`verify_inclusion` does (given keccak256's
    collision resistance, which everything here rests on). After ``cut`` steps of the
    RFC's loop, the rest of the computation depends only on (fn, sn, r) and the remaining
    proof hashes; when all of those equal a proof already verified in full, the plain
    algorithm would reach the same root, so the rest is skipped. With many proofs
    in one tree (every ballot of an election proves its credential in the same tree)
    that leaves about ``cut`` hashes a proof instead of log2(size).
    """

    def __init__(self, size: int, root: bytes, *, cut: int | None = None, max_entries: int = 1 << 17) -> None:
        self.size = size
        self.root = root
        # Default: remember at most ~2**17 upper paths (the remaining proof kept as it
        # came, ~600 bytes each, so ~80 MB at most), climbing as few levels as that
        # allows: 2 for small trees, 7 at 10M leaves, 9 at 44M.
        self.cut = max(2, (size - 1).bit_length() - 17) if cut is None else cut
        self.max_entries = max_entries
        # (cut, fn, sn, stride) -> (r, the remaining proof as encoded): comparing those
        # bytes costs far less than hashing them.
        self._known: dict[tuple[int, int, int, int], tuple[bytes, bytes]] = {}
        self.hits = 0

    def verify(self, leaf: bytes, index: int, proof: Sequence[bytes]) -> None:
        """Check ``proof`` as :func:`verify_inclusion` would."""
        _check_inclusion_shape(index, self.size, proof)
        self.verify_packed(leaf, index, b"".join(proof), stride=HASH_SIZE)

    def verify_packed(self, leaf: bytes, index: int, packed: bytes, *, stride: int) -> None:
        """The same check with the proof as one string: hash ``i`` is the last 32 bytes of
        ``packed[i * stride : (i + 1) * stride]``. With stride 33 that is the payload of
        an RLP list of 32-byte strings, taken straight from an encoding (whose decoder
        checked the prefixes); the prefix bytes are ignored here."""
        size = self.size
        n, extra = divmod(len(packed), stride)
        if extra:
            raise BadInclusionProof(f"packed proof of {len(packed)} bytes is not a whole number of hashes")
        if not 0 <= index < size or n != _inclusion_proof_len(index, size):
            _check_proof_length(index, size, n)  # raises, saying why
        c = min(self.cut, n)
        fn, sn, r = self._climb(index, size - 1, leaf_hash(leaf), packed, stride, 0, c)
        key = (c, fn, sn, stride)
        rest = packed[c * stride :]
        known = self._known.get(key)
        if known is not None and known[0] == r and known[1] == rest:
            self.hits += 1
            return
        _fn, sn, top = self._climb(fn, sn, r, packed, stride, c, n)
        _check_root(top, sn, index, size, self.root)
        if len(self._known) < self.max_entries:
            self._known[key] = (r, rest)

    @staticmethod
    def _climb(fn: int, sn: int, r: bytes, packed: bytes, stride: int, start: int, stop: int) -> tuple[int, int, bytes]:
        """The loop of :func:`verify_inclusion_hash` over hashes ``start..stop`` of a packed
        proof (see :meth:`verify_packed`); returns the new (fn, sn, r)."""
        step = _inclusion_step
        for pos in range(start * stride + stride - HASH_SIZE, stop * stride, stride):
            fn, sn, r = step(fn, sn, r, packed[pos : pos + HASH_SIZE])
        return fn, sn, r


def _trivially_consistent(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Step 1 and the shape checks of :func:`verify_consistency`: True when nothing is
    left to hash (equal sizes or an empty old tree); raises on a malformed proof."""
    if not 0 <= old_size <= new_size:
        raise BadConsistencyProof(f"old size {old_size} is not within 0..{new_size}")
    if old_size == new_size or old_size == 0:
        if proof:
            raise BadConsistencyProof(
                f"proof from size {old_size} to {new_size} must be empty, has {len(proof)} hashes"
            )
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise BadConsistencyProof(
                f"old root {old_root.hex()} of an empty tree is not keccak256(b'')"
            )
        if old_size == new_size and old_root != new_root:
            raise BadConsistencyProof(
                f"trees of equal size {old_size} have different roots "
                f"{old_root.hex()} and {new_root.hex()}"
            )
        return True
    want = _consistency_proof_len(old_size, new_size)
    if len(proof) != want:
        raise BadConsistencyProof(
            f"proof has {len(proof)} hashes; sizes {old_size} to {new_size} need {want}"
        )
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise BadConsistencyProof(f"proof hash {i} is {len(p)} bytes, not {HASH_SIZE}")
    return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: the tree of ``new_size`` leaves extends the one of ``old_size``.

    Raises :class:`BadConsistencyProof`. Equal sizes need an empty proof and equal roots;
    an empty old tree (whose root must be ``EMPTY_ROOT``) is a prefix of every tree, with
    an empty proof.
    """
    if _trivially_consistent(old_size, new_size, old_root, new_root, proof):
        return
    # Step 2: when the old tree is itself a complete subtree, its root is the proof's
    # implicit first element.
    path = proof
    if old_size & (old_size - 1) == 0:
        path = [old_root, *proof]
    fn = old_size - 1
    sn = new_size - 1
    # Step 4: skip the levels where the old tree's last node is a right child inside the
    # complete subtree whose root path[0] is.
    if fn & 1:
        shift = (~fn & (fn + 1)).bit_length() - 1
        fn >>= shift
        sn >>= shift
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # pragma: no cover - excluded by the length check
            raise BadConsistencyProof(f"proof is too long for sizes {old_size} to {new_size}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:  # 6.b.ii: promote right-border nodes without a sibling
                shift = (fn & -fn).bit_length() - 1
                fn >>= shift
                sn >>= shift
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # pragma: no cover - excluded by the length check
        raise BadConsistencyProof(f"proof is too short for sizes {old_size} to {new_size}")
    if fr != old_root:
        raise BadConsistencyProof(
            f"proof yields old root {fr.hex()} for size {old_size}, not {old_root.hex()}"
        )
    if sr != new_root:
        raise BadConsistencyProof(
            f"proof yields new root {sr.hex()} for size {new_size}, not {new_root.hex()}"
        )


# --- incremental append ------------------------------------------------------------------
class MerkleFrontier:
    """The right edge of a growing tree: its size and the roots of its perfect subtrees.

    The peaks are exactly the complete subtrees named by the 1 bits of ``size``, biggest
    (leftmost) first. Appending costs one leaf plus, amortised, one node hash.
    """

    __slots__ = ("_peaks", "_root", "_size")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if size < 0 or size >= 1 << 64:
            raise BadEncoding(f"frontier size {size} is not a 64-bit unsigned integer")
        if len(peaks) != size.bit_count():
            raise BadEncoding(
                f"a {size}-leaf frontier has {size.bit_count()} peaks, not {len(peaks)}"
            )
        for p in peaks:
            if len(p) != HASH_SIZE:
                raise BadEncoding(f"frontier peak is {len(p)} bytes, not {HASH_SIZE}")
        self._size = size
        self._peaks = [bytes(p) for p in peaks]
        self._root: bytes | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, leftmost (biggest) first."""
        return tuple(self._peaks)

    def append(self, leaf_hash_: bytes) -> list[Node]:
        """Add one leaf hash; return every complete subtree it finishes, leaf first."""
        if len(leaf_hash_) != HASH_SIZE:
            raise BadEncoding(f"leaf hash is {len(leaf_hash_)} bytes, not {HASH_SIZE}")
        n = self._size
        peaks = self._peaks
        out = [(0, n, leaf_hash_)]
        node = leaf_hash_
        level = 0
        i = n
        # Each trailing 1 bit of the old size is a peak of the same height as the new
        # node: merging them is the binary carry.
        while i & 1:
            node = node_hash(peaks.pop(), node)
            i >>= 1
            level += 1
            out.append((level, i, node))
        peaks.append(node)
        self._size = n + 1
        self._root = None
        return out

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[Node]:
        """:meth:`append` each leaf hash in turn; all the finished subtrees, in order."""
        out: list[Node] = []
        append = self.append
        for lh in leaf_hashes:
            out += append(lh)
        return out

    def root(self) -> bytes:
        """MTH of the current size: the peaks folded right to left (RFC 9162 2.1.1)."""
        r = self._root
        if r is None:
            r = _fold(self._peaks) if self._peaks else EMPTY_ROOT
            self._root = r
        return r

    def copy(self) -> MerkleFrontier:
        c = MerkleFrontier.__new__(MerkleFrontier)
        c._size = self._size
        c._peaks = list(self._peaks)
        c._root = self._root
        return c

    def to_bytes(self) -> bytes:
        """size as 8 bytes big-endian, then the peaks, leftmost first."""
        return self._size.to_bytes(8, "big") + b"".join(self._peaks)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerkleFrontier:
        """Inverse of :meth:`to_bytes`; refuses anything but an exact encoding."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise BadEncoding(f"frontier encoding of {len(data)} bytes is malformed")
        size = int.from_bytes(data[:8], "big")
        count = (len(data) - 8) // HASH_SIZE
        if count != size.bit_count():
            raise BadEncoding(f"a {size}-leaf frontier has {size.bit_count()} peaks, not {count}")
        peaks = [data[8 + j * HASH_SIZE : 8 + (j + 1) * HASH_SIZE] for j in range(count)]
        return cls(size, peaks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleFrontier):
            return NotImplemented
        return self._size == other._size and self._peaks == other._peaks

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()})"
