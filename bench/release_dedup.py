"""Release deduplication speed: close pairs in DuckDB, then the verdicts in one pass.

    python -m bench.release_dedup [--candidates 200000] [--copies 0.02] [--bits 4]

Synthetic candidates (random 64-bit hashes, ten shards) with planted copies: a share of exact
copies (same SHA-256) and as many near copies (2 bits flipped) of earlier candidates, in later
shards. Reports seconds per part, peak memory and how many planted copies were found. One JSON
object per line.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flip_assets.core.release.dedup import DUPLICATE_SHA256, NEAR_DUPLICATE, Candidate, find_duplicates, near_pairs


def synthetic(count: int, copies: float, seed: int = 0) -> tuple[list[Candidate], int, int]:
    """Candidates in ten shards; returns them and the numbers of exact and near copies planted."""
    rng = random.Random(seed)
    planted = int(count * copies)
    originals = [
        Candidate(f"{i * 10 // count:05d}", f"{i:09d}", f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(64):016x}")
        for i in range(count - 2 * planted)
    ]
    # Copies go after every original (a later shard), of originals chosen at random.
    exact = [Candidate("99999", f"e{i:08d}", o.sha256, o.phash) for i, o in enumerate(rng.sample(originals, planted))]
    near = [
        Candidate("99999", f"n{i:08d}", f"{rng.getrandbits(256):064x}", f"{int(o.phash, 16) ^ 0b101:016x}")
        for i, o in enumerate(rng.sample(originals, planted))
    ]
    return originals + exact + near, planted, planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=200_000)
    parser.add_argument("--copies", type=float, default=0.02, help="share of exact copies, and of near copies")
    parser.add_argument("--bits", type=int, default=4)
    args = parser.parse_args()
    candidates, exact, near = synthetic(args.candidates, args.copies)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidates.parquet"
        pq.write_table(pa.Table.from_pylist([vars(c) for c in candidates]), path)
        start = time.perf_counter()
        pairs = near_pairs(str(path), args.bits)
        pairs_s = time.perf_counter() - start
    start = time.perf_counter()
    verdicts = find_duplicates(candidates, pairs)
    verdicts_s = time.perf_counter() - start
    found = {status: sum(v.status == status for v in verdicts.values()) for status in (DUPLICATE_SHA256, NEAR_DUPLICATE)}
    print(json.dumps({
        "candidates": len(candidates), "bits": args.bits, "close_pairs": len(pairs),
        "pairs_s": round(pairs_s, 1), "verdicts_s": round(verdicts_s, 1),
        "planted_exact": exact, "found_exact": found[DUPLICATE_SHA256],
        "planted_near": near, "found_near": found[NEAR_DUPLICATE],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
