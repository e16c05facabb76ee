"""core.ledger.merkle against the RFC 6962 definitions written out naively, for every size 1..64 and index pair."""

from __future__ import annotations

from functools import cache

import pytest

from core.crypto.sm import sm3
from core.ledger import merkle
from core.ledger.merkle import InvalidProof

MAX = 64
ENTRIES = [f"evidence {i}".encode() for i in range(MAX)]
LEAVES = [merkle.leaf_hash(entry) for entry in ENTRIES]


def _k(n: int) -> int:
    k = 1
    while 2 * k < n:
        k *= 2
    return k


@cache
def naive_mth(start: int, end: int) -> bytes:
    """RFC 6962 2.1: MTH({}) = SM3(), MTH({d}) = SM3(0x00 ‖ d), else SM3(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))."""
    n = end - start
    if n == 0:
        return sm3(b"")
    if n == 1:
        return sm3(b"\x00" + ENTRIES[start])
    k = _k(n)
    return sm3(b"\x01" + naive_mth(start, start + k) + naive_mth(start + k, end))


def naive_path(m: int, start: int, end: int) -> list[bytes]:
    """RFC 6962 2.1.1 PATH(m, D[n])."""
    n = end - start
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, start, start + k), naive_mth(start + k, end)]
    return [*naive_path(m - k, start + k, end), naive_mth(start, start + k)]


def naive_subproof(m: int, start: int, end: int, whole: bool) -> list[bytes]:
    """RFC 6962 2.1.2 SUBPROOF(m, D[n], b)."""
    n = end - start
    if m == n:
        return [] if whole else [naive_mth(start, end)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, start, start + k, whole), naive_mth(start + k, end)]
    return [*naive_subproof(m - k, start + k, end, False), naive_mth(start, start + k)]


def flipped(proof: list[bytes], i: int) -> list[bytes]:
    changed = list(proof)
    changed[i] = bytes([changed[i][0] ^ 1]) + changed[i][1:]
    return changed


SIZES = range(1, MAX + 1)


@pytest.mark.parametrize("n", range(MAX + 1))
def test_root_is_the_naive_mth(n: int) -> None:
    assert merkle.root(LEAVES[:n]) == naive_mth(0, n)
    if n:
        hashes = [naive_mth(i << level, (i + 1) << level) for level, i in merkle.subtrees(0, n)]
        assert merkle.fold(hashes) == naive_mth(0, n)


def test_empty_tree_hash_is_sm3_of_nothing() -> None:
    assert merkle.EMPTY_ROOT == sm3(b"") == merkle.root([])


def test_compact_range_reports_every_completed_subtree_once() -> None:
    tree = merkle.CompactRange()
    seen: dict[tuple[int, int], bytes] = {}
    for n in SIZES:
        for level, index, node in tree.append(LEAVES[n - 1]):
            assert (level, index) not in seen
            seen[(level, index)] = node
        assert tree.root() == naive_mth(0, n)
        expected = {(level, i) for level in range(1, 7) for i in range(n >> level)}
        assert set(seen) == expected
    assert all(node == naive_mth(i << level, (i + 1) << level) for (level, i), node in seen.items())


def test_compact_range_resumes_from_its_hashes() -> None:
    for n in SIZES:
        hashes = [naive_mth(i << level, (i + 1) << level) for level, i in merkle.subtrees(0, n)]
        tree = merkle.CompactRange(n, hashes)
        for leaf in LEAVES[n:]:
            tree.append(leaf)
        assert tree.root() == naive_mth(0, MAX)
    with pytest.raises(ValueError):
        merkle.CompactRange(3, [LEAVES[0]])


def test_subtrees_refuses_ranges_that_are_no_tree_node() -> None:
    with pytest.raises(ValueError):
        merkle.subtrees(1, 3)
    with pytest.raises(ValueError):
        merkle.subtrees(2, 2)


@pytest.mark.parametrize("n", SIZES)
def test_inclusion_proofs(n: int) -> None:
    root = naive_mth(0, n)
    for m in range(n):
        proof = merkle.inclusion_proof(m, LEAVES[:n])
        assert proof == naive_path(m, 0, n)
        # Every range in a proof is a tree node, so a store can answer it from perfect subtrees.
        for a, b in merkle.inclusion_ranges(m, n):
            hashes = [naive_mth(i << level, (i + 1) << level) for level, i in merkle.subtrees(a, b)]
            assert merkle.fold(hashes) == naive_mth(a, b)
        merkle.verify_inclusion(LEAVES[m], m, n, proof, root)

        other_leaf = LEAVES[(m + 1) % MAX]
        bad_cases: list[tuple[bytes, int, list[bytes], bytes]] = [
            (other_leaf, m, proof, root),
            (LEAVES[m], m, proof, naive_mth(0, n - 1) if n > 1 else other_leaf),
            (LEAVES[m], m, [*proof, root], root),
        ]
        if proof:
            bad_cases.append((LEAVES[m], m, proof[:-1], root))
            bad_cases.extend((LEAVES[m], m, flipped(proof, i), root) for i in range(len(proof)))
        for leaf, index, bad_proof, bad_root in bad_cases:
            with pytest.raises(InvalidProof):
                merkle.verify_inclusion(leaf, index, n, bad_proof, bad_root)
    for index in (-1, n):
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(LEAVES[0], index, n, [], root)


@pytest.mark.parametrize("n", SIZES)
def test_consistency_proofs(n: int) -> None:
    new_root = naive_mth(0, n)
    for m in range(1, n + 1):
        old_root = naive_mth(0, m)
        proof = merkle.consistency_proof(m, LEAVES[:n])
        assert proof == naive_subproof(m, 0, n, True)
        for a, b in merkle.consistency_ranges(m, n):
            hashes = [naive_mth(i << level, (i + 1) << level) for level, i in merkle.subtrees(a, b)]
            assert merkle.fold(hashes) == naive_mth(a, b)
        merkle.verify_consistency(m, n, old_root, new_root, proof)

        other = naive_mth(0, m - 1)
        bad_cases: list[tuple[bytes, bytes, list[bytes]]] = [
            (other, new_root, proof),
            (old_root, other, proof),
            (old_root, new_root, [*proof, new_root]),
        ]
        if proof:
            bad_cases.append((old_root, new_root, proof[:-1]))
            bad_cases.extend((old_root, new_root, flipped(proof, i)) for i in range(len(proof)))
        for bad_old, bad_new, bad_proof in bad_cases:
            with pytest.raises(InvalidProof):
                merkle.verify_consistency(m, n, bad_old, bad_new, bad_proof)
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(0, n, merkle.EMPTY_ROOT, new_root, [])
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(n + 1, n, new_root, new_root, [])


def test_proofs_refuse_impossible_sizes() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_ranges(3, 3)
    with pytest.raises(ValueError):
        merkle.consistency_ranges(0, 3)
    with pytest.raises(ValueError):
        merkle.consistency_ranges(4, 3)
    with pytest.raises(InvalidProof):
        merkle.verify_inclusion(LEAVES[0][:31], 0, 1, [], LEAVES[0])
