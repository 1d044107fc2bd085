"""An in-process index of the banks' PDQ hashes for Hamming-distance lookups (issue 28).

Multi-index hashing on the 16 x 16-bit words of a hash: if two hashes differ in at most 31
of their 256 bits, then by pigeonhole at least one of the 16 words differs in at most 1 bit
(16 words each differing in 2 or more would make 32). So a lookup probes, in each of the 16
word tables, the query's word and its 16 one-bit neighbours (272 buckets), and checks the
candidates found there with an exact popcount. No hash within distance 31 can be missed:
recall is 100 % for any threshold up to 31 (bench/banks.py checks it against a brute-force
scan). A bucket holds N / 65,536 hashes on average, so 1 M hashes give ~4,000 candidates per
lookup instead of 1 M.

Each table is a sorted (CSR) layout: hash positions sorted by word t, and where each word
value's bucket begins, so a bucket is a slice and the 272 probes of a lookup are a few numpy
operations (no Python loop per probe or per candidate).
"""

from __future__ import annotations

import numpy as np

WORDS = 16
_FLIPS = np.array([0] + [1 << b for b in range(16)], dtype=np.int64)  # the word, 16 neighbours


def hex_to_words(hexes: list[str]) -> np.ndarray:
    """(N, 16) uint16 words, word 0 first as in the hex (ThreatExchange prints word 15 first;
    the order does not matter to the index as long as it is the same for all)."""
    if not hexes:
        return np.zeros((0, WORDS), dtype=np.uint16)
    raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u2")
    return raw.reshape(-1, WORDS).astype(np.uint16)


def as_u64(words: np.ndarray) -> np.ndarray:
    """(N, 4) uint64 view of (N, 16) uint16 words, for XOR + popcount."""
    return np.ascontiguousarray(words).view(np.uint64).reshape(-1, 4)


def popcount_distances(u64: np.ndarray, query_u64: np.ndarray) -> np.ndarray:
    return np.bitwise_count(u64 ^ query_u64).sum(axis=1, dtype=np.int32)


class PdqIndex:
    def __init__(self, hexes: list[str], payload: list | None = None):
        """`payload[i]`: what a lookup returns for hashes[i] (a bank hash id, say); None:
        the position i itself (no Python object per hash: 1 M of them would cost ~100 MB)."""
        n = len(hexes)
        self.words = hex_to_words(hexes)
        self.u64 = as_u64(self.words)
        self.size = n
        self.payload = payload
        # The 16 tables laid end to end, so that a lookup's probes and picks are one fancy
        # index each: table t's sorted positions at order[t*n:(t+1)*n], its bucket bounds at
        # starts[t*65537 + w] (already offset by t*n).
        self.order = np.empty(WORDS * n, dtype=np.int32)
        self.starts = np.empty(WORDS * 65537, dtype=np.int64)
        for t in range(WORDS):
            column = self.words[:, t]
            self.order[t * n : (t + 1) * n] = np.argsort(column, kind="stable")
            bounds = self.starts[t * 65537 : (t + 1) * 65537]
            bounds[0] = 0
            np.cumsum(np.bincount(column, minlength=65536), out=bounds[1:])
            bounds += t * n
        self._table_base = (np.arange(WORDS, dtype=np.int64) * 65537)[:, None]

    def __len__(self) -> int:
        return self.size

    def candidates(self, query_words: np.ndarray) -> np.ndarray:
        """Positions of the hashes sharing a word within one bit of the query's (a hash
        found in several tables is listed once per table)."""
        probes = (query_words.astype(np.int64)[:, None] ^ _FLIPS[None, :]) + self._table_base
        probes = probes.ravel()
        lo = self.starts[probes]
        sizes = self.starts[probes + 1] - lo
        total = int(sizes.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int32)
        # The probes' ranges flattened: lo_k .. lo_k + size_k for each probe k, in one index.
        shift = np.repeat(lo - (np.cumsum(sizes) - sizes), sizes)
        return self.order[shift + np.arange(total)]

    def lookup(self, query_hex: str, *, max_distance: int = 31) -> list[tuple[object, int]]:
        """(payload, distance) of every stored hash within `max_distance` (at most 31)."""
        if max_distance > 31:
            raise ValueError("the index guarantees recall up to distance 31")
        if not len(self):
            return []
        query = hex_to_words([query_hex])
        found = self.candidates(query[0])
        if found.size == 0:
            return []
        distances = popcount_distances(self.u64[found], as_u64(query)[0])
        close = distances <= max_distance
        if not close.any():
            return []
        positions, first = np.unique(found[close], return_index=True)
        payload = self.payload
        return [
            (payload[int(i)] if payload is not None else int(i), int(d))
            for i, d in zip(positions, distances[close][first], strict=True)
        ]


def brute_force(u64: np.ndarray, query_hex: str, *, max_distance: int = 31) -> np.ndarray:
    """Positions within `max_distance` by scanning every hash: the check for the index."""
    distances = popcount_distances(u64, as_u64(hex_to_words([query_hex]))[0])
    return np.flatnonzero(distances <= max_distance)
