"""dataset_statistics at scale: DuckDB against plain pandas on a synthetic release.

    python -m bench.release_statistics [--rows 1000000 10000000] [--shard-rows 100000] [--engines duckdb pandas]

For each size, writes a synthetic release of that many released rows (a fixture generated from
the schema, not data: flip_release, release_exclusions, released_face_demographics and the stage
files the funnel counts, only the columns the statistics read, shards of --shard-rows released
rows), then computes every statistic of dataset_statistics once with compute_statistics (DuckDB)
and once with the pandas implementation below, each in its own process so that its peak memory
is its own. Checks the two agree and prints one JSON object per line: rows, engine, wall and CPU
seconds (CPU time of all the process's threads: on a shared machine the wall time depends on the
load), released rows/s, peak RSS in MiB. Files go to a temporary folder (--keep to keep them).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flip_assets.core.io import storage
from flip_assets.core.analytics.demographics import RACES
from flip_assets.core.analytics.statistics import DEMOGRAPHIC_ATTRIBUTES, FACES, FUNNEL, STATISTICS_ARROW_TYPES, TOTAL, compute_statistics

WORDS = "a the young woman man smiling with long hair blue eyes beard glasses portrait of in at red dress happy face".split()
KEYWORDS = ["smile", "smiling", "beard", "eyes", "glasses", "hair", "face", "lips"]
POOL = 4096  # distinct values per column; rows take them at random, which keeps generation fast


def _pool(rng, make) -> list:
    return [make(rng) for _ in range(POOL)]


def _take(rng, pool, n: int, type_=None) -> pa.Array:
    return pa.array(pool, type_).take(pa.array(rng.integers(0, len(pool), n)))


def _keys(start: int, n: int) -> pa.Array:
    return pa.array(np.arange(start, start + n)).cast(pa.string())


def write_synthetic_release(home: Path, rows: int, shard_rows: int, seed: int = 0) -> list[str]:
    """Per shard: raw samples 2x the released ones (80 % downloaded), face 1.5x (of which face-text
    1.2x, denoised 1.08x), released 1x, excluded 0.08x, and 1.4 faces per released image."""
    rng = np.random.default_rng(seed)
    captions = _pool(rng, lambda r: " ".join(r.choice(WORDS, r.integers(3, 30))))
    keywords = _pool(rng, lambda r: sorted(set(r.choice(KEYWORDS, r.integers(0, 4)))))

    def boxes(r):
        out = []
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            x, y, side = r.uniform(0, 300), r.uniform(0, 300), r.uniform(8, 200)
            out.append([x, y, x + side, y + side * 1.2])
        return out

    face_boxes = _pool(rng, boxes)
    shards = []
    for number, start in enumerate(range(0, rows, shard_rows)):
        shard, n = f"{number:05d}", min(shard_rows, rows - start)
        shards.append(shard)

        def write(asset: str, table: pa.Table) -> None:
            path = storage.partition_path(home, asset, shard)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path, compression="zstd")

        raw = 2 * n
        # Where images would lie in a tar: none here (the galleries show such samples as missing).
        nowhere = {name: pa.nulls(raw, kind) for name, kind in (
            ("tar_path", pa.string()), ("image_offset", pa.int64()), ("image_size", pa.int64()), ("image_sha256", pa.string()))}  # fmt: skip
        write("raw_shards", pa.table({
            "key": _keys(0, raw), "status": pa.array(np.where(rng.random(raw) < 0.8, "ok", "failed_to_download")),
            "caption": _take(rng, captions, raw), **nowhere,
        }))  # fmt: skip
        detected = raw
        write("face_detections", pa.table({
            "key": _keys(0, detected), "kept": pa.array(np.arange(detected) < 1.5 * n),
            "drop_reason": pa.array(np.where(np.arange(detected) < 1.5 * n, None, "no_face")),
            "best_score": pa.array(rng.uniform(0, 1, detected).astype(np.float32)),
            "faces": pa.nulls(detected, STATISTICS_ARROW_TYPES[FACES]),
        }))  # fmt: skip
        paired = int(1.5 * n)
        write("face_text_pairs", pa.table({
            "key": _keys(0, paired), "kept": pa.array(np.arange(paired) < 1.2 * n),
            "caption": _take(rng, captions, paired), "text_score": pa.array(rng.uniform(0, 1, paired).astype(np.float32)),
        }))  # fmt: skip
        denoised = int(1.2 * n)
        write("denoised_captions", pa.table({"key": _keys(0, denoised), "denoised": _denoised(rng, captions, denoised, int(1.08 * n))}))
        height, width = rng.integers(64, 4000, n).astype(np.int32), rng.integers(64, 4000, n).astype(np.int32)
        release_boxes = _take(rng, face_boxes, n, pa.list_(pa.list_(pa.float32())))
        nsfw = rng.choice(["UNLIKELY", "UNSURE", "NSFW"], n, p=[0.9, 0.06, 0.04])
        text = _take(rng, captions, n)
        write("flip_release", pa.table({
            "key": _keys(0, n), "TEXT": text, "original_caption": text, "KEYWORDS": _take(rng, keywords, n, pa.list_(pa.string())),
            "HEIGHT": height, "WIDTH": width, "NSFW": nsfw,
            "laion_nsfw": pa.array(np.where(rng.random(n) < 0.5, nsfw, None)),
            "face_count": _lengths(release_boxes), "face_boxes": release_boxes,
            "face_score": pa.array(rng.uniform(0.9, 1, n).astype(np.float32)),
            "text_score": pa.array(rng.uniform(0.97, 1, n).astype(np.float32)),
        }))  # fmt: skip
        excluded = int(0.08 * n)
        write("release_exclusions", pa.table({
            "key": _keys(n, excluded), "reason": rng.choice(["nsfw", "duplicate_sha256", "near_duplicate", "blocklisted"], excluded),
        }))  # fmt: skip
        faces = int(pc.sum(_lengths(release_boxes)).as_py())
        write("released_face_demographics", pa.table({
            "key": _keys(0, faces), "face_index": pa.array(np.zeros(faces, np.int32)),
            "age": pa.array(rng.uniform(1, 80, faces).astype(np.float32)),
            "gender": rng.choice(["male", "female"], faces), "race": rng.choice(list(RACES), faces),
            "error": pa.array(np.where(rng.random(faces) < 0.01, "corrupt_image", None)),
        }))  # fmt: skip
    return shards


def _denoised(rng, captions: list[str], rows: int, with_text: int) -> pa.Array:
    """Denoised captions: text for the first `with_text` rows, null (dropped) for the rest."""
    text = _take(rng, captions, rows)
    return pc.if_else(pa.array(np.arange(rows) < with_text), text, pa.nulls(rows, pa.string()))


def _lengths(lists: pa.Array) -> pa.Array:
    return pc.list_value_length(lists).cast(pa.int32())


def _read(home: Path, asset: str, shards: list[str], columns: list[str]):
    import pandas as pd

    frames = []
    for shard in shards:
        frame = pd.read_parquet(storage.partition_path(home, asset, shard), columns=columns)
        frame["file_shard"] = shard
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pandas_statistics(home: Path, shards: list[str]) -> dict:
    """The numbers of compute_statistics with pandas, every shard present (what the bench writes)."""
    import pandas as pd

    raw = _read(home, "raw_shards", shards, ["key", "status"])
    funnel = pd.DataFrame({
        "raw": raw.groupby("file_shard").size(),
        "downloaded": raw.assign(ok=raw.status == "ok").groupby("file_shard").ok.sum(),
        "face": _read(home, "face_detections", shards, ["kept"]).groupby("file_shard").kept.sum(),
        "face_text": _read(home, "face_text_pairs", shards, ["kept"]).groupby("file_shard").kept.sum(),
        "denoised": _read(home, "denoised_captions", shards, ["denoised"]).groupby("file_shard").denoised.count(),
    })  # fmt: skip
    del raw
    columns = ["TEXT", "original_caption", "KEYWORDS", "HEIGHT", "WIDTH", "NSFW", "laion_nsfw", "face_count", "face_boxes"]
    release = _read(home, "flip_release", shards, columns)
    exclusions = _read(home, "release_exclusions", shards, ["reason"])
    funnel["released"] = release.groupby("file_shard").size()
    funnel["excluded"] = exclusions.groupby("file_shard").size()
    funnel = funnel.fillna(0).astype(int)
    funnel_rows = [{"shard": s, **row} for s, row in funnel.to_dict("index").items()]
    funnel_rows.append({"shard": TOTAL, **funnel.sum().to_dict()})

    chars, words = release.TEXT.str.len(), release.TEXT.str.count("[^ ]+")
    captions = {
        "captions": len(release), "mean_chars": chars.mean(), "mean_words": words.mean(),
        "median_chars": chars.median(), "median_words": words.median(),
        "mean_original_chars": release.original_caption.str.len().mean(),
        "mean_original_words": release.original_caption.str.count("[^ ]+").mean(),
    }  # fmt: skip
    caption_words = words.clip(upper=40).value_counts().sort_index()
    keyword_rows = release.KEYWORDS.explode().dropna().value_counts()
    faces_per_image = release.face_count.clip(upper=10).value_counts().sort_index()

    boxes = release[["face_boxes", "HEIGHT", "WIDTH"]].explode("face_boxes").dropna(subset=["face_boxes"])
    corners = np.stack(boxes.face_boxes.to_numpy()).astype(np.float64)
    area = np.maximum(corners[:, 2] - corners[:, 0], 0) * np.maximum(corners[:, 3] - corners[:, 1], 0)
    side = np.sqrt(area)
    side_from = (2 ** np.clip(np.floor(np.log2(np.maximum(side, 1))), 4, 10)).astype(int)
    image_area = boxes.HEIGHT.to_numpy(np.float64) * boxes.WIDTH.to_numpy(np.float64)
    longer = np.maximum(np.maximum(release.HEIGHT, release.WIDTH), 1).to_numpy()
    image_from = (2 ** np.clip(np.floor(np.log2(longer)), 6, 12)).astype(int)

    n_released, n_excluded = len(release), len(exclusions)
    candidates = n_released + n_excluded
    released_nsfw = int((release.NSFW == "NSFW").sum())
    tagged = release.laion_nsfw.notna()
    safety = {
        "released": n_released, "released_nsfw": released_nsfw, "released_unsure": int((release.NSFW == "UNSURE").sum()),
        "laion_tagged": int(tagged.sum()), "laion_agrees": int((release.laion_nsfw[tagged] == release.NSFW[tagged]).sum()),
        "excluded": n_excluded, "excluded_nsfw": int((exclusions.reason == "nsfw").sum()),
        "duplicates": int(exclusions.reason.str.contains("duplicate").sum()),
        "blocklisted": int((exclusions.reason == "blocklisted").sum()), "candidates": candidates,
    }  # fmt: skip
    safety.update(
        nsfw_share=(released_nsfw + safety["excluded_nsfw"]) / candidates, released_nsfw_share=released_nsfw / n_released,
        duplicate_share=safety["duplicates"] / candidates, laion_agreement=safety["laion_agrees"] / safety["laion_tagged"],
    )  # fmt: skip

    faces = _read(home, "released_face_demographics", shards, ["age", "gender", "race", "error"])
    estimated = faces[faces.error.isna()]
    decade = np.floor(estimated.age / 10)
    decades = (10 * decade).astype(int).astype(str) + "-" + (10 * decade + 9).astype(int).astype(str)
    age_group = np.where(estimated.age >= 70, "70+", decades)
    demographics = {
        "age_group": pd.Series(age_group).value_counts().to_dict(),
        "gender": estimated.gender.value_counts().to_dict(),
        "race": estimated.race.value_counts().to_dict(),
        "not_estimated": faces.error.value_counts().to_dict(),
    }
    return {
        "funnel": funnel_rows,
        "captions": captions,
        "caption_words": caption_words.to_dict(),
        "keywords": (keyword_rows / n_released).to_dict(),
        "faces_per_image": faces_per_image.to_dict(),
        "face_sizes": pd.Series(side_from).value_counts().sort_index().to_dict(),
        "face_size_summary": {
            "faces": len(side), "mean_side": side.mean(), "median_side": float(np.median(np.floor(side) + 0.5)),  # whole-pixel bins, as the merge
            "mean_area_share": float(np.nanmean(np.where(image_area > 0, area / np.where(image_area > 0, image_area, 1), np.nan))),
        },  # fmt: skip
        "image_sizes": pd.Series(image_from).value_counts().sort_index().to_dict(),
        "image_size_summary": {
            "mean_height": release.HEIGHT.mean(), "mean_width": release.WIDTH.mean(), "median_height": release.HEIGHT.median(),
            "median_width": release.WIDTH.median(), "mean_megapixels": (release.HEIGHT.astype(float) * release.WIDTH).mean() / 1e6,
        },  # fmt: skip
        "safety": safety,
        "demographics": demographics,
    }


def duckdb_statistics(home: Path, shards: list[str]) -> dict:
    """compute_statistics in the shape pandas_statistics returns, to compare them."""
    stats = compute_statistics(home, shards)
    return {
        "funnel": stats.funnel,
        "captions": stats.captions,
        "caption_words": {r["words"]: r["samples"] for r in stats.caption_words},
        "keywords": {r["keyword"]: r["share"] for r in stats.keywords},
        "faces_per_image": {r["faces"]: r["images"] for r in stats.faces_per_image},
        "face_sizes": {r["side_from"]: r["faces"] for r in stats.face_sizes},
        "face_size_summary": stats.face_size_summary,
        "image_sizes": {r["side_from"]: r["images"] for r in stats.image_sizes},
        "image_size_summary": stats.image_size_summary,
        "safety": stats.safety,
        "demographics": {a: {r["value"]: r["faces"] for r in stats.demographics[a]} for a in DEMOGRAPHIC_ATTRIBUTES},
    }


def differences(a, b, where: str = "") -> list[str]:
    """Where two results differ (numbers compared to 1e-6 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        a, b = {str(k): v for k, v in a.items()}, {str(k): v for k, v in b.items()}
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} != {len(b)} rows"]
        return [d for n, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{n}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return [] if math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _run_one(engine: str, home: Path, out: Path, memory_gib: float) -> None:
    """In a child process: compute, write the result and the figures of this process alone. The
    child's address space is capped, so that pandas on a large release fails with MemoryError
    instead of driving a shared machine out of memory."""
    limit = int(memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    shards = json.loads((home / "shards.json").read_text())
    started, cpu_started = time.perf_counter(), time.process_time()
    result = (duckdb_statistics if engine == "duckdb" else pandas_statistics)(home, shards)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": peak_mib, "result": result}
    out.write_text(json.dumps(figures, default=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--shard-rows", type=int, default=100_000)
    parser.add_argument("--engines", nargs="+", default=["duckdb", "pandas"], choices=["duckdb", "pandas"])
    parser.add_argument("--memory-gib", type=float, default=10.0, help="address-space cap of each engine's process")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "HOME", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run_one(args.child[0], Path(args.child[1]), Path(args.child[2]), args.memory_gib)
        return
    for rows in args.rows:
        home = Path(tempfile.mkdtemp(prefix=f"release_{rows}_"))
        try:
            started = time.perf_counter()
            shards = write_synthetic_release(home, rows, args.shard_rows)
            (home / "shards.json").write_text(json.dumps(shards))
            generated = round(time.perf_counter() - started, 1)
            print(json.dumps({"rows": rows, "shards": len(shards), "generate_seconds": generated}), flush=True)
            results = {}
            for engine in args.engines:
                out = home / f"{engine}.json"
                command = [sys.executable, "-m", "bench.release_statistics", "--memory-gib", str(args.memory_gib)]
                done = subprocess.run([*command, "--child", engine, str(home), str(out)], capture_output=True, text=True)
                if done.returncode != 0:
                    error = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    print(json.dumps({"rows": rows, "engine": engine, "failed": error, "memory_cap_gib": args.memory_gib}), flush=True)
                    continue
                results[engine] = json.loads(out.read_text())
                print(json.dumps({
                    "rows": rows, "engine": engine, "seconds": round(results[engine]["seconds"], 2),
                    "cpu_seconds": round(results[engine]["cpu_seconds"], 2),
                    "rows_per_s": round(rows / results[engine]["seconds"]), "peak_rss_mib": round(results[engine]["peak_rss_mib"]),
                }), flush=True)  # fmt: skip
            if len(results) == 2:
                diffs = differences(results["duckdb"]["result"], results["pandas"]["result"])
                print(json.dumps({"rows": rows, "engines_agree": not diffs, "differences": diffs[:10]}), flush=True)
        finally:
            if args.keep:
                print(json.dumps({"kept": str(home)}))
            else:
                shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
