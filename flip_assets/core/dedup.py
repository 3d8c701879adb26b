"""Deduplication of release candidates across all shards: exact (SHA-256 of the image bytes)
and near-duplicate (64-bit perceptual hash within a Hamming distance).

The first occurrence in one global order, shard then key, is kept; every later copy points to
it. The verdicts depend only on the set of candidates, never on the order in which shards were
processed, so a re-run or a backfill in any order decides the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

KEPT, DUPLICATE_SHA256, NEAR_DUPLICATE = "kept", "duplicate_sha256", "near_duplicate"
HASH_BITS = 64


def perceptual_hash(rgb: np.ndarray) -> str:
    """DCT perceptual hash (imagehash.phash, 8x8 = 64 bits) as 16 hex digits."""
    import imagehash
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(rgb)))


@dataclass(frozen=True)
class Candidate:
    shard: str
    key: str
    sha256: str | None
    phash: str | None  # 16 hex digits; None when the image could not be read


@dataclass(frozen=True)
class Verdict:
    status: str  # kept | duplicate_sha256 | near_duplicate
    duplicate_of_shard: str | None = None
    duplicate_of: str | None = None


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """(shift, mask) of max_distance + 1 bit ranges covering the hash: two hashes within the
    distance agree on at least one range (pigeonhole), so only those need comparing."""
    count = max_distance + 1
    edges = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(edges, edges[1:])]


def find_duplicates(candidates: Iterable[Candidate], max_distance: int) -> dict[tuple[str, str], Verdict]:
    """A verdict per (shard, key). A later image with the bytes of a kept one is a
    duplicate_sha256 of it; one whose hash lies within max_distance bits of a kept image's is a
    near_duplicate of the earliest such. Identical bytes share the verdict of their first copy
    (the same hash lies as near the same kept image)."""
    bands = _bands(max_distance)
    tables: list[dict[int, list[int]]] = [{} for _ in bands]
    kept: list[tuple[int, Candidate]] = []  # (hash, candidate) of kept images with a hash
    first_by_sha: dict[str, Candidate] = {}
    verdicts: dict[tuple[str, str], Verdict] = {}
    for c in sorted(candidates, key=lambda c: (c.shard, c.key)):
        first = first_by_sha.get(c.sha256) if c.sha256 else None
        if first is not None:
            earlier = verdicts[first.shard, first.key]
            verdicts[c.shard, c.key] = (
                Verdict(DUPLICATE_SHA256, first.shard, first.key) if earlier.status == KEPT else earlier
            )
            continue
        if c.sha256:
            first_by_sha[c.sha256] = c
        verdict = Verdict(KEPT)
        if c.phash is not None:
            value = int(c.phash, 16)
            near = {
                i for (shift, mask), table in zip(bands, tables) for i in table.get((value >> shift) & mask, ())
            }  # fmt: skip
            within = [i for i in sorted(near) if (kept[i][0] ^ value).bit_count() <= max_distance]
            if within:
                match = kept[within[0]][1]
                verdict = Verdict(NEAR_DUPLICATE, match.shard, match.key)
            else:
                for (shift, mask), table in zip(bands, tables):
                    table.setdefault((value >> shift) & mask, []).append(len(kept))
                kept.append((value, c))
        verdicts[c.shard, c.key] = verdict
    return verdicts
