"""Exact and near-duplicate detection for clauses and documents.

Two clauses are duplicates when their normalised words are identical, or when the
Jaccard similarity of their word 3-shingle sets is at least `NEAR_DUP_JACCARD`.
Candidates come from MinHash with banded locality-sensitive hashing (so 50,000 clauses
take seconds, not a quadratic scan); every candidate pair is then confirmed with the
exact Jaccard similarity, so LSH decides only which pairs are looked at.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

NEAR_DUP_JACCARD = 0.8
_WORD = re.compile(r"[a-z0-9]+")
_PRIME = (1 << 61) - 1


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def exact_key(text: str) -> str:
    return hashlib.sha1(" ".join(words(text)).encode()).hexdigest()


def shingles(text: str, k: int = 3) -> set[str]:
    w = words(text)
    if len(w) < k:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i : i + k]) for i in range(len(w) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class MinHasher:
    def __init__(self, num_perm: int = 64, bands: int = 16, seed: int = 13):
        assert num_perm % bands == 0
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, _PRIME, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _PRIME, size=num_perm, dtype=np.uint64)
        self.bands, self.rows = bands, num_perm // bands

    def signature(self, sh: set[str]) -> np.ndarray:
        if not sh:
            return np.zeros(len(self.a), dtype=np.uint64)
        h = np.array(
            [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") & _PRIME for s in sh],
            dtype=np.uint64,
        )
        # (a*h + b) mod p in uint64 overflows; the wrap-around is a fine hash family here
        return ((np.outer(h, self.a) + self.b) % np.uint64(_PRIME)).min(axis=0)

    def band_keys(self, sig: np.ndarray) -> list[bytes]:
        return [bytes([i]) + sig[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = NEAR_DUP_JACCARD, groups: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of duplicate texts. With `groups`, only pairs whose groups
    differ are returned (e.g. clauses of different splits)."""
    hasher = MinHasher()
    sh = [shingles(t) for t in texts]
    buckets: dict[bytes, list[int]] = defaultdict(list)
    exact: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(texts):
        exact[exact_key(t)].append(i)
        if len(sh[i]) >= 3:  # too short for shingles to mean much: exact matches only
            for key in hasher.band_keys(hasher.signature(sh[i])):
                buckets[key].append(i)
    pairs: set[tuple[int, int]] = set()

    def consider(members: list[int], check: bool) -> None:
        if len(members) < 2:
            return
        if groups is not None and len({groups[m] for m in members}) < 2:
            return
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if groups is not None and groups[i] == groups[j]:
                    continue
                if (i, j) in pairs:
                    continue
                if not check or jaccard(sh[i], sh[j]) >= threshold:
                    pairs.add((i, j))

    for members in exact.values():
        consider(members, check=False)
    for members in buckets.values():
        consider(members, check=True)
    return sorted(pairs)
