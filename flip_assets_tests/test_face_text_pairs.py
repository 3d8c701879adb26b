"""face_text_pairs: the output contract, every face sample accounted for, bad captions."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_text_resources, run_assets
from flip_assets.core.curation.face_filter import FACE_DETECTIONS_SCHEMA
from flip_assets.core.curation.face_text_pairs import (
    CAPTION_TOO_LONG,
    EMPTY_CAPTION,
    FACE_TEXT_PAIRS_SCHEMA,
    LOW_TEXT_SCORE,
    MISSING_CAPTION,
)
from flip_assets.core.io.shards import RAW_SHARD_SCHEMA

CONTRACT = [
    ("key", pa.string()), ("url", pa.string()), ("caption", pa.string()), ("width", pa.int32()),
    ("height", pa.int32()), ("text_score", pa.float32()), ("keywords", pa.list_(pa.string())),
    ("kept", pa.bool_()), ("drop_reason", pa.string()),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.e2e
def test_every_face_sample_scored_under_the_contract(text_filtered):
    assert [(f.name, f.type) for f in FACE_TEXT_PAIRS_SCHEMA] == CONTRACT
    for shard in ("00000", "00001"):
        table = pq.read_table(text_filtered.home / "face_text_pairs" / f"{shard}.parquet")
        assert [(f.name, f.type) for f in table.schema] == CONTRACT
        detections = pq.read_table(text_filtered.home / "face_detections" / f"{shard}.parquet").to_pylist()
        assert sorted(table["key"].to_pylist()) == sorted(r["key"] for r in detections if r["kept"])
        meta = text_filtered.metadata[("face_text_pairs", shard)]
        # The threshold caption_classifier chose on the reviewed dev captions.
        threshold = text_filtered.metadata[("caption_classifier", None)]["threshold"]
        assert meta["keep_threshold"] == threshold and meta["threshold_source"] == "chosen by caption_classifier"
        for row in table.to_pylist():
            assert 0.0 <= row["text_score"] <= 1.0
            assert row["kept"] == (row["text_score"] > threshold)
            assert row["drop_reason"] == (None if row["kept"] else LOW_TEXT_SCORE)
        assert meta["kept_share"] == pytest.approx(sum(table["kept"].to_pylist()) / table.num_rows)
        for check in ("every_face_sample_accounted_for", "scores_in_range", "unique_keys", "contract"):
            assert text_filtered.checks[("face_text_pairs", check)]


BAD_CAPTIONS = {
    "empty": ("", EMPTY_CAPTION),
    "whitespace": (" \t\n ", EMPTY_CAPTION),
    "markup_only": ('<br/><a href="http://x.example/smile.jpg"></a> www.example.com', EMPTY_CAPTION),
    "none": (None, MISSING_CAPTION),
    "too_long": ("smile " * 2000, CAPTION_TOO_LONG),
    "french": ("Une femme souriante aux yeux bleus et aux boucles d'oreilles", None),
    "chinese": ("一个微笑的女人", None),
    "emoji": ("😀😀😀 🙂", None),
    "control": ("A woman\x00 with a\x07 big\u200b smile\x1b[0m and blue eyes", None),
    "face": ("A young woman with blue eyes smiles at the camera", None),
}


def _bad_shard(home, shard: str) -> None:
    """A shard whose every sample has a face and one of BAD_CAPTIONS as caption."""
    raw, det = [], []
    for i, (name, (caption, _)) in enumerate(BAD_CAPTIONS.items()):
        key = f"{shard}{i:04d}"
        raw.append({"key": key, "url": f"http://x.example/{name}.jpg", "caption": caption, "width": 64, "height": 48, "status": "ok"})
        det.append({"key": key, "kept": True, "face_count": 1, "best_score": 0.99})
    for asset_key, rows, schema in (("raw_shards", raw, RAW_SHARD_SCHEMA), ("face_detections", det, FACE_DETECTIONS_SCHEMA)):
        (home / asset_key).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), home / asset_key / f"{shard}.parquet")


@pytest.fixture
def bad_home(tmp_path, text_filtered):
    """A FLIP_HOME with the session's keywords and classifier and one shard of bad captions."""
    shutil.copytree(text_filtered.home / "face_keywords", tmp_path / "face_keywords")
    shutil.copytree(text_filtered.home / "caption_classifier", tmp_path / "caption_classifier")
    _bad_shard(tmp_path, "99999")
    return tmp_path


@pytest.mark.slow
@pytest.mark.e2e
def test_bad_captions_get_a_score_or_a_drop_reason(bad_home, instance):
    from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs

    result = run_assets([face_text_pairs], make_text_resources(bad_home, max_caption_chars=10_000), instance, "99999")
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    rows = pq.read_table(bad_home / "face_text_pairs" / "99999.parquet").to_pylist()
    assert len(rows) == len(BAD_CAPTIONS)
    for row, (name, (caption, reason)) in zip(rows, BAD_CAPTIONS.items()):
        assert row["caption"] == caption, name
        if reason is None:
            assert 0.0 <= row["text_score"] <= 1.0, name
            assert row["drop_reason"] in (None, LOW_TEXT_SCORE), name
        else:
            assert row["text_score"] is None and not row["kept"] and row["drop_reason"] == reason, name
    by_name = dict(zip(BAD_CAPTIONS, rows))
    assert by_name["face"]["kept"] and by_name["face"]["keywords"] == ["eyes"]
    assert by_name["control"]["keywords"] == ["smile", "eyes"]


@pytest.mark.slow
@pytest.mark.e2e
def test_text_threshold_setting_overrides_the_chosen_threshold(bad_home, instance):
    from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs

    result = run_assets([face_text_pairs], make_text_resources(bad_home, keep_threshold=0.001), instance, "99999")
    assert result.success
    (materialization,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in materialization.materialization.metadata.items()}
    assert meta["keep_threshold"] == 0.001 and meta["threshold_source"] == "FLIP_TEXT_THRESHOLD"
    rows = pq.read_table(bad_home / "face_text_pairs" / "99999.parquet").to_pylist()
    assert all(r["kept"] == (r["text_score"] > 0.001) for r in rows if r["text_score"] is not None)


def test_missing_classifier_fails_fast_naming_the_path(tmp_path, instance):
    from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs

    _bad_shard(tmp_path, "99999")
    result = run_assets([face_text_pairs], make_text_resources(tmp_path), instance, "99999")
    assert not result.success
    failures = [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
    # The classifier is used only once caption_classifier published it (its checks passed).
    assert any(str(tmp_path / "caption_classifier") in f for f in failures), failures
    assert not (tmp_path / "face_text_pairs").exists()
