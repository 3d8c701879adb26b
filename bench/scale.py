"""Global stages at the paper's size: what adding one shard costs against N rows, and the full rebuild.

    python -m bench.scale [--sizes 1000000,10000000,80000000] [--stages release_index]
                          [--shard-size 10000] [--folder /tmp] [--rebuild-max 1000000]

Per stage and size: synthetic per-shard files of N rows (generated vectorised, on --folder,
removed afterwards), then each measurement in a process of its own (its peak RSS is its own).
One JSON object per line: stage, what, rows, seconds (wall), cpu_s, peak_rss_mib, load average,
machine.

STAGES maps a stage's name to its benchmark: a function (folder, rows, args) yielding result
rows; another global stage's benchmark (statistics, the card) is one more entry.

release_index: N candidates in shards of --shard-size, a share (--copies) of each shard exact
copies (same SHA-256 and hash) and as many near copies (3 bits of the hash flipped, another
SHA-256) of rows of earlier shards; then one more shard of --shard-size with planted copies of
rows anywhere in the index. Measured: adding that shard (its entries, the key check and its
verdicts: release_index's work), the release's freshness check over every shard's footers, a
re-run of the first shard (its entries looked up in every later shard's, for the later releases
it may change), and the full rebuild (every close pair, then one verdict pass over all rows: what release_index did
before), which grows with the square of the rows per band and is skipped above --rebuild-max.
"""

from __future__ import annotations

import argparse
import binascii
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flip_assets.core.io import storage
from flip_assets.core.release import index
from flip_assets.core.release.dedup import KEPT, Candidate, find_duplicates, near_pairs

NEW_SHARD = "99999999"  # the shard added last: after every shard of the index
NEAR_FLIP = 0b1011  # the bits a near copy flips


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a fixed pseudo-random 64-bit value per integer, so any row can be made again."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hex(words: np.ndarray) -> pa.Array:
    """Rows of uint64 words as lower-case hex strings (16 digits a word), built in one buffer."""
    rows, width = words.shape[0], 16 * words.shape[1]
    data = binascii.hexlify(words.astype(">u8").tobytes())
    offsets = np.arange(0, rows * width + 1, width, dtype=np.int32)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def _digits(values: np.ndarray, width: int) -> pa.Array:
    """Non-negative integers as zero-padded decimal strings of `width` digits."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    chars = ((values[:, None] // powers) % 10 + 48).astype(np.uint8)
    offsets = np.arange(0, len(values) * width + 1, width, dtype=np.int32)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes()))


def synthetic_rows(ids: np.ndarray, shards: np.ndarray, exact_of: np.ndarray, near_of: np.ndarray, with_words: bool = False):
    """Candidates (shard, key, sha256, phash) of rows `ids`: a row's image is its own, or that of
    row exact_of (same SHA-256 and hash), or near that of row near_of (hash with NEAR_FLIP);
    -1: its own. with_words: also (the SHA-256's first word, the hash) as numbers."""
    own = ids.astype(np.uint64)
    image = np.where(exact_of >= 0, exact_of, ids).astype(np.uint64)
    hashed = np.where(near_of >= 0, near_of, image).astype(np.uint64)
    phash = _mix(hashed * np.uint64(5) + np.uint64(1)) ^ np.where(near_of >= 0, np.uint64(NEAR_FLIP), np.uint64(0))
    sha_source = np.where(near_of >= 0, own, image)  # a near copy is other bytes
    sha = np.stack([_mix(sha_source * np.uint64(5) + np.uint64(k)) for k in (2, 3, 4, 5)], axis=1)
    table = pa.table({
        "shard": _digits(shards, 8), "key": _digits(ids, 11), "sha256": _hex(sha), "phash": _hex(phash[:, None]),
    })  # fmt: skip
    return (table, (sha[:, 0], phash)) if with_words else table


def shard_plan(shard: int, shard_size: int, copies: float, originals_below: int, rng: np.random.Generator):
    """Row ids of one shard and which earlier rows its first rows copy: `copies` of its rows
    exact copies, as many near copies, of rows below `originals_below` that are not copies."""
    ids = np.arange(shard * shard_size, (shard + 1) * shard_size, dtype=np.int64)
    planted = int(shard_size * copies) if originals_below else 0
    exact_of, near_of = np.full(shard_size, -1), np.full(shard_size, -1)
    if planted:
        # Originals: rows past the planted copies of their shard (every shard starts with its copies).
        first_free = 2 * int(shard_size * copies)
        pick = rng.integers(0, originals_below // shard_size * (shard_size - first_free), 2 * planted)
        originals = pick // (shard_size - first_free) * shard_size + first_free + pick % (shard_size - first_free)
        exact_of[:planted], near_of[planted : 2 * planted] = originals[:planted], originals[planted:]
    return ids, exact_of, near_of, planted


def generate(folder: Path, rows: int, shard_size: int, copies: float, full_candidates: bool, seed: int = 0) -> dict:
    """release_index/<shard>.parquet and release_candidates/<shard>.parquet for `rows` rows, and the
    new shard's candidates file (not indexed). The index entries are made here as the entries
    query makes them (h: the hash, s64: the SHA-256's first 64 bits), without reading the
    candidates back. Without full_candidates, an existing shard's candidates file holds its first
    row only: the release's freshness check reads footers, never rows, and the full rebuild
    (which reads them) is not run at those sizes. Returns the planted counts."""
    rng = np.random.default_rng(seed)
    candidates, index_dir = folder / "release_candidates", folder / "release_index"
    candidates.mkdir(parents=True), index_dir.mkdir(parents=True)
    shards, planted = rows // shard_size, 0
    for s in range(shards):
        ids, exact_of, near_of, count = shard_plan(s, shard_size, copies, s * shard_size, rng)
        planted += count
        table, words = synthetic_rows(ids, ids // shard_size, exact_of, near_of, with_words=True)
        name = f"{s:08d}"
        pq.write_table(table if full_candidates else table.slice(0, 1), candidates / f"{name}.parquet")
        entries = table.append_column("h", pa.array(words[1], pa.uint64())).append_column("s64", pa.array(words[0], pa.uint64()))
        stamp = index.stamp_metadata(candidates / f"{name}.parquet")
        pq.write_table(entries.cast(index.ENTRY_SCHEMA).replace_schema_metadata(stamp), index_dir / f"{name}.parquet")
    ids, exact_of, near_of, new_planted = shard_plan(shards, shard_size, copies * 2, rows, rng)
    new = synthetic_rows(ids, np.full(shard_size, int(NEW_SHARD)), exact_of, near_of)
    (folder / "new").mkdir()
    pq.write_table(new, folder / "new" / f"{NEW_SHARD}.parquet")
    return {"planted_in_index": 2 * planted, "planted_in_new_shard": 2 * new_planted}


def add_shard(folder: Path, max_distance: int) -> dict:
    """release_index's work for the new shard against the index of every other shard: its
    entries, the key check, its verdicts; then the release's freshness check over every shard."""
    new = folder / "new" / f"{NEW_SHARD}.parquet"
    files = storage.partition_files(folder / "release_index" / "*.parquet")
    start = time.perf_counter()
    entries = index.entries(new)
    path = folder / "new" / "entries.parquet"
    storage.write_table(path, entries)
    facts = storage.query(
        storage.sql_file("release_index_checks.sql"), path=str(path), index=[str(f) for f in files.values()] + [str(path)], shard=NEW_SHARD
    )[0]  # fmt: skip
    checked = time.perf_counter()
    verdicts = index.shard_verdicts(entries, [*files.values(), path], max_distance)
    decided = time.perf_counter()
    candidates = {p.stem: p for p in (folder / "release_candidates").glob("*.parquet")}
    stale = index.stale_shards(candidates, files, NEW_SHARD)
    fresh = time.perf_counter()
    return {
        "seconds": round(decided - start, 1), "entries_and_key_check_s": round(checked - start, 1),
        "verdicts_s": round(decided - checked, 1), "freshness_check_s": round(fresh - decided, 1),
        "stale_shards": len(stale), "keys_in_several_shards": facts["keys_in_several_shards"],
        "duplicates_found": sum(v.status != KEPT for v in verdicts.values()),
        "verdicts": {k: [v.status, v.duplicate_of_shard, v.duplicate_of] for k, v in verdicts.items() if v.status != KEPT},
    }  # fmt: skip


def rerun_first_shard(folder: Path, max_distance: int) -> dict:
    """release_index's extra work when the first shard is re-run (the costliest position): its
    entries looked up in every later shard's, and on through what they reach (the later shards
    whose releases it may change)."""
    files = storage.partition_files(folder / "release_index" / "*.parquet")
    first = min(files)
    start = time.perf_counter()
    reached = index.later_shards_reached(pq.read_table(files[first]), [f for s, f in files.items() if s != first], max_distance)
    return {"seconds": round(time.perf_counter() - start, 1), "later_shards_reached": len(reached)}


def full_rebuild(folder: Path, max_distance: int) -> dict:
    """Every candidate of every shard, the new one included, decided in one pass."""
    start = time.perf_counter()
    glob = [str(folder / "release_candidates" / "*.parquet"), str(folder / "new" / f"{NEW_SHARD}.parquet")]
    rows = storage.query("SELECT shard, key, sha256, phash FROM read_parquet($c)", c=glob)
    pairs = near_pairs(glob, max_distance)
    verdicts = find_duplicates((Candidate(**r) for r in rows), pairs)
    new = {k: [v.status, v.duplicate_of_shard, v.duplicate_of] for (s, k), v in verdicts.items() if s == NEW_SHARD and v.status != KEPT}
    return {
        "seconds": round(time.perf_counter() - start, 1), "close_pairs": len(pairs),
        "duplicates_found": sum(v.status != KEPT for v in verdicts.values()), "verdicts": new,
        "not_kept": sorted(k for (s, k), v in verdicts.items() if v.status != KEPT),
    }  # fmt: skip


def planted_keys(rows: int, shard_size: int, copies: float) -> tuple[set[str], set[str]]:
    """Keys of the planted copies: in the index (every shard after the first starts with them)
    and in the new shard (twice the share)."""
    first = 2 * int(shard_size * copies)
    index_keys = {f"{s * shard_size + i:011d}" for s in range(1, rows // shard_size) for i in range(first)}
    new = 2 * int(shard_size * copies * 2)
    return index_keys, {f"{rows // shard_size * shard_size + i:011d}" for i in range(new)}


def release_index_stage(folder: Path, rows: int, args: argparse.Namespace) -> Iterator[dict]:
    start = time.perf_counter()
    planted = generate(folder, rows, args.shard_size, args.copies, full_candidates=rows <= args.rebuild_max)
    in_index, in_new = planted_keys(rows, args.shard_size, args.copies)
    assert len(in_index) == planted["planted_in_index"] and len(in_new) == planted["planted_in_new_shard"]
    disk = sum(p.stat().st_size for p in folder.rglob("*.parquet"))
    yield {"what": "generate", "rows": rows, "seconds": round(time.perf_counter() - start, 1), "disk_gib": round(disk / 2**30, 2), **planted}
    added = _measure("add_shard", folder, args.bits)
    added_verdicts = added.pop("verdicts")
    yield {"what": "add_one_shard", "rows": rows, "shard_rows": args.shard_size, **added,
           "every_planted_found": in_new <= set(added_verdicts)}  # fmt: skip
    yield {"what": "rerun_first_shard", "rows": rows, "shard_rows": args.shard_size, **_measure("rerun_first_shard", folder, args.bits)}
    if rows > args.rebuild_max:
        yield {"what": "full_rebuild", "rows": rows, "skipped": f"over --rebuild-max {args.rebuild_max}: the pair search "
               "grows with the square of the rows per band (1 M rows: minutes), so it would run far past 10 minutes"}  # fmt: skip
        return
    rebuilt = _measure("full_rebuild", folder, args.bits)
    rebuilt_verdicts, not_kept = rebuilt.pop("verdicts"), set(rebuilt.pop("not_kept"))
    yield {"what": "full_rebuild", "rows": rows + args.shard_size, **rebuilt,
           "every_planted_found": in_index | in_new <= not_kept,
           "new_shard_verdicts_equal_add_one_shard": rebuilt_verdicts == added_verdicts}  # fmt: skip


STAGES: dict[str, Callable[[Path, int, argparse.Namespace], Iterator[dict]]] = {"release_index": release_index_stage}
MEASUREMENTS = {"add_shard": add_shard, "rerun_first_shard": rerun_first_shard, "full_rebuild": full_rebuild}


def _measure(name: str, folder: Path, bits: int) -> dict:
    """One measurement in a process of its own, for its own peak RSS."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--measure", name, "--folder", str(folder), "--bits", str(bits)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.node()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000,80000000")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--copies", type=float, default=0.01, help="share of exact copies, and of near copies, per shard")
    parser.add_argument("--bits", type=int, default=4, help="FLIP_NEAR_DUPLICATE_BITS")
    parser.add_argument("--rebuild-max", type=int, default=1_000_000)
    parser.add_argument("--folder", default="/tmp")
    parser.add_argument("--measure", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a child process of _measure
        result = MEASUREMENTS[args.measure](Path(args.folder), args.bits)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # CPU seconds beside the wall seconds: on a shared machine (nice, load) the wall time
        # measures the others too.
        result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
        result["peak_rss_mib"] = round(usage.ru_maxrss / 1024)
        print(json.dumps(result), flush=True)
        return
    for stage in args.stages.split(","):
        for rows in (int(s) for s in args.sizes.split(",")):
            folder = Path(tempfile.mkdtemp(prefix=f"bench_scale_{stage}_", dir=args.folder))
            try:
                for result in STAGES[stage](folder, rows, args):
                    print(json.dumps({"stage": stage, **result, "load_average": [round(x, 1) for x in os.getloadavg()],
                                      "machine": machine()}), flush=True)  # fmt: skip
            finally:
                shutil.rmtree(folder)


if __name__ == "__main__":
    main()
