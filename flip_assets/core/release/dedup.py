"""Deduplication of release candidates across all shards: exact (SHA-256 of the image bytes)
and near-duplicate (64-bit perceptual hash within a Hamming distance).

The first occurrence in one global order, shard then key, is kept; every later copy points to
it. The verdicts depend only on the set of candidates, never on the order in which shards were
processed, so a re-run or a backfill in any order decides the same. Close pairs are found by
DuckDB (release_near_duplicates.sql, through a band index, not every pair); the verdicts, which
depend on one another in order, are then decided here in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from flip_assets.core.io import storage

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


def bands(count: int) -> tuple[list[int], list[int]]:
    """Shifts and masks of `count` bit ranges covering the hash. Two hashes at most d bits apart
    differ by at most d // count bits in at least one range (pigeonhole): with d + 1 ranges they
    agree on one, so only those need comparing."""
    edges = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return edges[:-1], [(1 << (hi - lo)) - 1 for lo, hi in zip(edges, edges[1:])]


def near_pairs(candidates: str, max_distance: int) -> list[dict]:
    """Close pairs among the candidate files (a path or glob): earlier_shard, earlier_key,
    later_shard, later_key."""
    shifts, masks = bands(max_distance + 1)
    return storage.query(
        storage.sql_file("release_near_duplicates.sql"),
        candidates=candidates, shifts=shifts, masks=masks, max_distance=max_distance,
    )  # fmt: skip


def find_duplicates(candidates: Iterable[Candidate], pairs: Iterable[dict]) -> dict[tuple[str, str], Verdict]:
    """A verdict per (shard, key), from the candidates and their close pairs (near_pairs). A later
    image with the bytes of a kept one is a duplicate_sha256 of it; one whose hash is close to a
    kept image's is a near_duplicate of the earliest such (never of another duplicate, so chains
    of small changes do not remove images far from every kept one). Identical bytes share the
    verdict of their first copy (the same hash lies as near the same kept image)."""
    earlier: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p in pairs:
        earlier.setdefault((p["later_shard"], p["later_key"]), []).append((p["earlier_shard"], p["earlier_key"]))
    first_by_sha: dict[str, tuple[str, str]] = {}
    verdicts: dict[tuple[str, str], Verdict] = {}
    for c in sorted(candidates, key=lambda c: (c.shard, c.key)):
        first = first_by_sha.get(c.sha256) if c.sha256 else None
        if first is not None:
            verdicts[c.shard, c.key] = (
                Verdict(DUPLICATE_SHA256, *first) if verdicts[first].status == KEPT else verdicts[first]
            )
            continue
        if c.sha256:
            first_by_sha[c.sha256] = (c.shard, c.key)
        kept_close = [e for e in earlier.get((c.shard, c.key), ()) if verdicts[e].status == KEPT]
        verdicts[c.shard, c.key] = Verdict(NEAR_DUPLICATE, *min(kept_close)) if kept_close else Verdict(KEPT)
    return verdicts
