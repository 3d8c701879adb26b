"""Galleries (issue 21 item 4): a sample whose image cannot be read is shown as missing with
why, never dropped; scores are truncated so a near miss never reads as the threshold."""

from __future__ import annotations

import hashlib

from conftest import DATA

from flip_assets.core.analytics.gallery import gallery_jpeg, rejection_items, released_items
from flip_assets.core.io.shards import read_shard


def _row(raw: dict, **extra) -> dict:
    return {"shard": "00002", "boxes": [[10.0, 10.0, 60.0, 70.0]], "face_score": 0.8999, "text_score": None,
            "key": raw["key"], "tar_path": raw["tar_path"], "image_offset": raw["image_offset"],
            "image_size": raw["image_size"], "image_sha256": raw["image_sha256"], **extra}  # fmt: skip


def test_unreadable_and_changed_images_are_shown_as_missing_not_dropped(tmp_path):
    table, _ = read_shard(DATA / "raw_shards", "00002")
    raw = [r for r in table.to_pylist() if r["image_size"]][:3]
    rows = [
        _row(raw[0], kind="face found, caption rejected", caption="A boy laughs"),
        _row(raw[1], kind="face found, caption rejected", caption="gone", tar_path=str(tmp_path / "gone.tar")),
        _row(raw[2], kind="face found, caption rejected", caption="changed", image_sha256=hashlib.sha256(b"x").hexdigest()),
    ]
    items = rejection_items(rows)
    assert [i.image is not None for i in items] == [True, False, False]
    assert any("image unreadable" in line for line in items[1].lines)
    assert any("not the image raw_shards recorded" in line for line in items[2].lines)
    assert "face 0.899" in items[0].lines[-1]  # 0.8999 must not read as 0.900
    assert gallery_jpeg(items, "rejections").startswith(b"\xff\xd8")


def test_an_empty_gallery_is_still_a_figure():
    assert released_items([]) == []
    assert gallery_jpeg([], "Released samples").startswith(b"\xff\xd8")


def test_a_shard_without_raw_shards_still_shows_its_released_samples(tmp_path):
    """flip_release never fails for its gallery: without a raw_shards file the samples are shown,
    each image marked missing."""
    import pyarrow as pa

    from flip_assets.core.analytics.gallery import shard_gallery_rows
    from flip_assets.core.io import storage

    release = storage.write_table(tmp_path / "release.parquet", pa.table({
        "key": ["a", "b"], "TEXT": ["A smiling girl.", "A man in glasses."], "original_caption": ["x", "y"],
        "face_boxes": pa.array([[[1.0, 2.0, 3.0, 4.0]], []], pa.list_(pa.list_(pa.float32()))),
        "face_score": [0.99, 0.95], "text_score": [0.99, 0.98],
    }))  # fmt: skip
    rows = shard_gallery_rows(release, tmp_path / "no_raw_shards.parquet", "00003")
    assert sorted(r["key"] for r in rows) == ["a", "b"]
    assert all(item.image is None and "no image recorded in raw_shards" in item.lines for item in released_items(rows))
