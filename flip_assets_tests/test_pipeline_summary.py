"""The main command's summary: the funnel is counted from the published files of each shard."""

from __future__ import annotations

import pyarrow as pa

from flip_assets.core.io import storage
from flip_assets.core.analytics.pipeline_summary import CheckTally, funnel, funnel_table


def test_the_funnel_counts_each_stage_from_the_published_files_and_marks_missing_ones(tmp_path):
    def write(asset, shard, **columns):
        storage.write_table(storage.partition_path(tmp_path, asset, shard), pa.table(columns))

    write("raw_shards", "00000", key=["a", "b", "c", "d"], status=["ok", "ok", "ok", "failed_to_download"])
    write("face_detections", "00000", key=["a", "b", "c"], kept=[True, True, False])
    write("face_text_pairs", "00000", key=["a", "b"], kept=[True, False])
    write("denoised_captions", "00000", key=["a", "b"], outcome=["llm", "dropped"])
    write("flip_release", "00000", key=pa.array([], pa.string()))
    write("raw_shards", "00001", key=["e"], status=["ok"])  # its later stages failed
    rows = funnel(lambda asset, shard: storage.partition_path(tmp_path, asset, shard), ["00000", "00001"])
    assert rows[0] == {"shard": "00000", "raw": 4, "downloaded": 3, "face": 2, "face_text": 1, "denoised": 1, "released": 0}
    assert rows[1] == {"shard": "00001", "raw": 1, "downloaded": 1, "face": None, "face_text": None, "denoised": None, "released": None}
    assert rows[2] == {"shard": "total", "raw": 5, "downloaded": 4, "face": 2, "face_text": 1, "denoised": 1, "released": 0}
    table = funnel_table(rows).splitlines()
    assert table[0].split() == ["shard", "raw", "downloaded", "face", "face_text", "denoised", "released"]
    assert table[2].split() == ["00001", "1", "1", "-", "-", "-", "-"]


def test_check_tally_names_what_failed_and_what_warned():
    tally = CheckTally()
    tally.add("raw_shards.unique_keys", passed=True, warning=False)
    tally.add("face_keywords.every_candidate_reviewed", passed=False, warning=True)
    tally.add("flip_release.schema_exact", passed=False, warning=False)
    assert tally.line() == "1 passed, 1 failed (flip_release.schema_exact), 1 warned (face_keywords.every_candidate_reviewed)"


def test_the_main_commands_summary_reads_the_published_files_through_the_configured_storage(tmp_path, monkeypatch):
    """summary() as `make pipeline` calls it: FlipStorage initialized from the definitions'
    resources (it has a teardown, so only as a context manager), on a FLIP_HOME holding one
    shard's raw_shards file."""
    from dagster import Definitions

    from flip_assets.defs.storage import FlipStorage
    from flip_assets.tools.run_pipeline import summary

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    defs = Definitions(resources={"flip_storage": FlipStorage(home=str(tmp_path))})
    storage.write_table(storage.partition_path(tmp_path, "raw_shards", "00000"), pa.table({"key": ["a"], "status": ["ok"]}))
    text = summary(defs, ["00000"], runs=3, failures=[], checks=CheckTally(passed=5)).splitlines()
    assert "runs: 3 succeeded, 0 failed" in text and "asset checks: 5 passed, 0 failed, 0 warned" in text
    assert text[6].split() == ["00000", "1", "1", "-", "-", "-", "-"]
    assert text[8].startswith(f"release: {tmp_path}/flip_release/<shard>.parquet (0 pairs in 1 shards)")
    assert text[-1] == f"UI on this instance: DAGSTER_HOME={tmp_path / 'dagster'} make ui, then open http://127.0.0.1:3000"
