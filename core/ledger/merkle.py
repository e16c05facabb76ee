"""Merkle tree hashing as RFC 6962 / RFC 9162 define it, with SM3 in place of SHA-256.

leaf = SM3(0x00 ‖ entry), node = SM3(0x01 ‖ left ‖ right); the tree over n leaves splits at the largest power of two
smaller than n. Every node of such a tree covers a range D[a:b] that is a run of perfect subtrees, largest first, each
aligned to its own size; storage works with those perfect subtrees, named (level, index) for leaves
[index·2^level, (index+1)·2^level). Proofs are computed as lists of ranges first, so a store can answer them from
whichever subtree hashes it keeps; the verifiers follow RFC 9162 2.1.3.2 and 2.1.4.2 step by step.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence

from core.crypto.sm import sm3

HASH_SIZE = 32
# RFC 6962 2.1: the MTH of an empty list is the hash of the empty string.
EMPTY_ROOT = sm3(b"")

Range = tuple[int, int]
Subtree = tuple[int, int]


class InvalidProof(Exception):
    """The proof does not lead from the given hashes to the given root(s), or does not fit the given sizes."""


def leaf_hash(entry: bytes) -> bytes:
    return sm3(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sm3(b"\x01" + left + right)


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2): where RFC 6962 splits a tree of n leaves."""
    if n < 2:
        raise ValueError("only a tree of two or more leaves splits")
    return 1 << ((n - 1).bit_length() - 1)


def subtrees(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees (level, index), left to right, whose `fold` is the MTH of D[start:end].

    Holds for every range that is a node of an RFC 6962 tree, e.g. D[0:n]; other ranges raise ValueError."""
    if not 0 <= start < end:
        raise ValueError(f"empty or negative range [{start}, {end})")
    found: list[Subtree] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise ValueError(f"[{start}, {end}) is not a node of an RFC 6962 tree")
        found.append((level, start >> level))
        start += 1 << level
    return found


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect subtree hashes, left to right, into the hash of the range they cover.

    The right edge of an RFC 6962 tree nests to the right: MTH = H(s1, H(s2, … H(s_{k-1}, s_k)))."""
    if not hashes:
        raise ValueError("nothing to fold")
    combined = hashes[-1]
    for left in reversed(hashes[:-1]):
        combined = node_hash(left, combined)
    return combined


class CompactRange:
    """The perfect subtree hashes covering D[0:size]: enough to extend the tree and compute its root.

    One hash per set bit of `size`, largest subtree first. The unit may be a leaf or any perfect subtree, as long as
    every hash appended has that same height."""

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self._hashes = list(hashes)
        if size < 0 or len(self._hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} holds {size.bit_count()} hashes")
        self.size = size

    def append(self, unit_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add the next unit; return the larger subtrees this completed as (level, index, hash), level ≥ 1."""
        self._hashes.append(unit_hash)
        self.size += 1
        completed: list[tuple[int, int, bytes]] = []
        level = 0
        # Each trailing zero bit of the new size is one pair of equal subtrees that now merges.
        while not (self.size >> level) & 1:
            right = self._hashes.pop()
            merged = node_hash(self._hashes.pop(), right)
            self._hashes.append(merged)
            level += 1
            completed.append((level, (self.size >> level) - 1, merged))
        return completed

    def root(self) -> bytes:
        return fold(self._hashes) if self._hashes else EMPTY_ROOT


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH over the leaf hashes, in one pass and O(log n) memory."""
    tree = CompactRange()
    for leaf in leaf_hashes:
        tree.append(leaf)
    return tree.root()


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose MTHs form the audit path of leaf `index` in a tree of `size` leaves, lowest first
    (RFC 9162 2.1.3.1, PATH(m, D[n]))."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + split_point(end - start)
        if index < middle:
            path.append((middle, end))
            end = middle
        else:
            path.append((start, middle))
            start = middle
    path.reverse()
    return path


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """The ranges whose MTHs prove the tree of `old_size` leaves a prefix of the tree of `new_size`
    (RFC 9162 2.1.4.1, PROOF(m, D[n])). Empty when the sizes are equal."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    path: list[Range] = []
    start, end, old = 0, new_size, old_size
    # False once the old tree's last node is no longer a whole subtree of the new tree: that node must then be sent.
    whole = True
    while old != end - start:
        split = split_point(end - start)
        if old <= split:
            path.append((start + split, end))
            end = start + split
        else:
            path.append((start, start + split))
            start += split
            old -= split
            whole = False
    if not whole:
        path.append((start, end))
    path.reverse()
    return path


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    return [root(leaf_hashes[a:b]) for a, b in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    return [root(leaf_hashes[a:b]) for a, b in consistency_ranges(old_size, len(leaf_hashes))]


def _check_hashes(*hashes: bytes) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise InvalidProof(f"every hash in a proof has {HASH_SIZE} bytes")


def _shift_to_set_bit(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until fn's lowest bit is set or fn is 0."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an audit path leads to from `leaf` at `index` (RFC 9162 2.1.3.2, steps 1-5 less the comparison)."""
    _check_hashes(leaf, *proof)
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of {size}")
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            raise InvalidProof("the audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                fn, sn = _shift_to_set_bit(fn, sn)
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the audit path is shorter than the tree is deep")
    return result


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> None:
    """Raises InvalidProof unless `proof` shows `leaf` at `index` in the tree of `size` with `expected_root`."""
    if not hmac.compare_digest(root_from_inclusion(leaf, index, size, proof), expected_root):
        raise InvalidProof("the audit path does not lead to the root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raises InvalidProof unless `proof` shows the tree (old_size, old_root) a prefix of (new_size, new_root)
    (RFC 9162 2.1.4.2). An empty tree has no proof: any tree extends it."""
    _check_hashes(old_root, new_root, *proof)
    if not 0 < old_size <= new_size:
        raise InvalidProof(f"no consistency proof from {old_size} to {new_size}")
    if old_size == new_size:
        if proof or not hmac.compare_digest(old_root, new_root):
            raise InvalidProof("equal sizes need equal roots and an empty proof")
        return
    if not proof:
        raise InvalidProof("the consistency proof is empty")
    path = list(proof)
    # A power-of-two old tree is itself a node of the new tree; the proof leaves its hash out.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_result = new_result = path[0]
    for node in path[1:]:
        if sn == 0:
            raise InvalidProof("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            old_result = node_hash(node, old_result)
            new_result = node_hash(node, new_result)
            if not fn & 1:
                fn, sn = _shift_to_set_bit(fn, sn)
        else:
            new_result = node_hash(new_result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the consistency proof is shorter than the tree is deep")
    if not (hmac.compare_digest(old_result, old_root) and hmac.compare_digest(new_result, new_root)):
        raise InvalidProof("the consistency proof does not lead to both roots")
