"""The main command's summary: the funnel is counted from the published files of each shard."""

from __future__ import annotations

import pyarrow as pa

from flip_assets.core import storage
from flip_assets.core.pipeline_summary import CheckTally, funnel, funnel_table


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
