"""dataset_statistics from per-shard partial aggregates (issue 23): the merge of the shards'
partials gives the figures of one pass over all their files; a shard re-run replaces its partial
(never counted twice); a missing or stale partial is named and left out, never silently used.
On the benchmark's synthetic release (every stage, a few shards of 1,000 released rows)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import run_assets

from bench.release_statistics import differences, write_synthetic_release
from flip_assets.core.analytics.statistics import (
    PARTIAL, compute_statistics, statistics_from_partials, statistics_partial,
)
from flip_assets.core.io import storage
from flip_assets.core.release import index
from flip_assets.defs.analytics.statistics import dataset_statistics, release_statistics_partial
from flip_assets.defs.storage import FlipStorage


def _write_partial(home: Path, shard: str) -> Path:
    path = storage.partition_path(home, PARTIAL, shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(statistics_partial(home, [shard]), path)
    return path


def _figures(stats) -> dict:
    return json.loads(stats.to_json())


@pytest.fixture
def release(tmp_path) -> tuple[Path, list[str]]:
    shards = write_synthetic_release(tmp_path, rows=3000, shard_rows=1000)
    return tmp_path, shards


def test_merged_partials_give_the_figures_of_one_pass_over_all_files(release):
    home, shards = release
    for shard in shards:
        _write_partial(home, shard)
    merged = statistics_from_partials(home, shards)
    assert not merged.problems
    assert not differences(_figures(merged), _figures(compute_statistics(home, shards)))
    # Exact where DuckDB's median is exact (value histograms), within half a pixel for the face side.
    releases = [str(storage.partition_path(home, "flip_release", s)) for s in shards]
    direct = duckdb.connect().execute(
        f"""SELECT median(length(TEXT)) AS chars, median(HEIGHT) AS height, median(WIDTH) AS width, count(*) AS released,
                   (SELECT median(sqrt(greatest(b[3] - b[1], 0) * greatest(b[4] - b[2], 0)))
                    FROM (SELECT unnest(face_boxes) AS b FROM read_parquet({releases}))) AS side
            FROM read_parquet({releases})"""
    ).fetchone()  # fmt: skip
    assert merged.captions["median_chars"] == direct[0] and merged.captions["captions"] == direct[3] == 3000
    assert (merged.image_size_summary["median_height"], merged.image_size_summary["median_width"]) == direct[1:3]
    assert abs(merged.face_size_summary["median_side"] - direct[4]) <= 0.5
    assert [row["released"] for row in merged.funnel] == [1000, 1000, 1000, 3000]
    # The card's gallery: the first picks of all shards by the key's hash, as one query over every file.
    picks = duckdb.connect().execute(
        f"SELECT key FROM read_parquet({releases}) ORDER BY sha256('gallery:' || key) LIMIT 12"
    ).fetchall()  # fmt: skip
    assert [row["key"] for row in merged.galleries["released"]] == [key for (key,) in picks]
    assert len(merged.galleries["rejections"]) == 4  # faces found, captions rejected (no keywords here)


def test_a_rerun_shard_replaces_its_partial_through_dagster(release, instance):
    home, shards = release
    resources = {"flip_storage": FlipStorage(home=str(home))}
    for shard in shards:
        assert run_assets([release_statistics_partial], resources, instance, shard).success
    assert run_assets([release_statistics_partial], resources, instance, shards[0]).success  # the same shard again
    # Shard 00001's release shrinks to 400 rows; its partial re-run replaces the old one.
    path = storage.partition_path(home, "flip_release", shards[1])
    pq.write_table(pq.read_table(path).slice(0, 400), path)
    assert run_assets([release_statistics_partial], resources, instance, shards[1]).success
    assert run_assets([dataset_statistics], resources, instance).success
    stats = json.loads((home / "dataset_statistics" / "statistics.json").read_text())
    assert stats["captions"]["captions"] == 2400 and stats["funnel"][-1]["released"] == 2400
    assert not differences(stats, _figures(compute_statistics(home, shards)))
    # An earlier shard's index re-run reached shard 00002's samples after its release was made.
    index.mark_invalidated(home / "release_index", [shards[2]], shards[0], "a-later-run")
    result = run_assets([dataset_statistics], resources, instance)
    named = [e for e in result.get_asset_check_evaluations() if e.check_name == "every_release_current"]
    assert [e.passed for e in named] == [False]
    assert named[0].metadata["releases_out_of_date"].value == [
        {"shard": shards[2], "problem": f"release_index of shard(s) {shards[0]} changed since it was released"}
    ]


def test_a_missing_or_stale_partial_is_named_and_not_counted(release):
    home, shards = release
    for shard in shards[:2]:
        _write_partial(home, shard)  # none for 00002
    path = storage.partition_path(home, "flip_release", shards[1])
    pq.write_table(pq.read_table(path).slice(0, 10), path)  # changed after its partial was taken
    stats = statistics_from_partials(home, shards)
    named = {p["shard"]: p["problem"] for p in stats.check_facts()["partials_missing_or_stale"]}
    assert named[shards[2]].startswith("missing")
    assert named[shards[1]] == "stale: flip_release changed since it was taken"
    assert stats.captions["captions"] == 1000  # 00000 alone
    by_shard = {row["shard"]: row for row in stats.funnel}
    assert by_shard[shards[1]]["released"] is None and by_shard[shards[2]]["released"] is None
    # The same bytes written anew (a no-op re-run upstream: a new file, a new mtime) keep the partial current.
    same = storage.partition_path(home, "flip_release", shards[0])
    content = same.read_bytes()
    same.unlink()
    same.write_bytes(content)
    assert shards[0] not in {p["shard"] for p in statistics_from_partials(home, shards).problems}


def test_scale_benchmark_small_version():
    """bench.scale_statistics at a toy size: one shard added, every partial merged, JSON lines
    with rows, seconds, peak RSS and the machine."""
    from bench.scale_statistics import run

    lines = run([4000], shard_rows=1000, templates_count=2, emit=lambda line: None)
    measured = {line["measured"]: line for line in lines if "measured" in line}
    assert measured["merged_statistics"]["released"] == 4000 and measured["merged_statistics"]["partial_shards"] == 4
    assert measured["add_one_shard"]["partial_rows"] > 0
    for line in measured.values():
        assert line["rows"] == 4000 and line["seconds"] > 0 and line["peak_rss_mib"] > 0 and "CPU cores" in line["machine"]
