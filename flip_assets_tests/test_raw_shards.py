"""raw_shards and face_detections on damaged input: every sample gets a status and a reason."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA, RAW_SHARDS, make_resources, run_assets
from PIL import Image

from flip_assets.core import storage
from flip_assets.core.images import ImageRejected, decode_rgb
from flip_assets.core.shards import list_shards, read_shard


def _face_jpeg(index: int = 0) -> bytes:
    row = pq.read_table(DATA / "eval" / "faces_300w_helen_test.parquet", columns=["image"]).slice(index, 1)
    return row.column("image")[0].as_py()


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _meta(key: str, caption: str, img: bytes | None) -> dict:
    size = Image.open(io.BytesIO(img)).size if img else (None, None)
    return {"key": key, "caption": caption, "url": f"http://example.com/{key}.jpg", "status": "success",
            "error_message": None, "width": size[0], "height": size[1], "sha256": None}


@pytest.fixture(scope="module")
def broken_source(tmp_path_factory) -> Path:
    """A shard with one sample per kind of damage, in img2dataset's layout."""
    source = tmp_path_factory.mktemp("broken_source")
    face = _face_jpeg()
    face_img = Image.open(io.BytesIO(face))
    rgba = face_img.convert("RGBA")
    rgba.putalpha(200)
    samples = {
        "000090000": ("good face", face),
        "000090001": ("corrupt", b"\xff\xd8\xff\xe0 this is not a jpeg at all" * 10),
        "000090002": ("truncated", face[: len(face) // 3]),
        "000090003": ("zero bytes", b""),
        # 100 megapixels; a 1-bit PNG keeps the file tiny, the header still says 10000x10000.
        "000090004": ("bomb", _encode(Image.new("1", (10000, 10000)), "PNG")),
        "000090005": ("cmyk face", _encode(face_img.convert("CMYK"), "JPEG")),
        "000090006": ("grey face", _encode(face_img.convert("L"), "JPEG")),
        "000090007": ("alpha face", _encode(rgba, "PNG")),
    }
    rows = []
    with tarfile.open(source / "00009.tar", "w") as tar:
        for key, (caption, img) in samples.items():
            ext = "png" if img[:4] == b"\x89PNG" else "jpg"
            _add(tar, f"{key}.{ext}", img)
            _add(tar, f"{key}.json", json.dumps(_meta(key, caption, img if caption.endswith("face") else None)).encode())
            _add(tar, f"{key}.txt", caption.encode())
            rows.append(_meta(key, caption, None))
        # Missing .txt (the parquet row has no caption either), missing .json, non-UTF-8 caption.
        _add(tar, "000090008.jpg", face)
        _add(tar, "000090008.json", json.dumps(_meta("000090008", None, face)).encode())
        _add(tar, "000090009.jpg", face)
        _add(tar, "000090009.txt", b"no json here")
        _add(tar, "000090010.jpg", face)
        _add(tar, "000090010.json", json.dumps(_meta("000090010", None, face)).encode())
        _add(tar, "000090010.txt", "caf\xe9 portrait".encode("latin-1"))
    rows.append({**_meta("000090008", None, None)})
    rows.append({**_meta("000090010", None, None)})
    rows.append({**_meta("000090011", "never downloaded", None), "status": "failed_to_download",
                 "error_message": "HTTP Error 404: Not Found"})
    pq.write_table(pa.Table.from_pylist(rows), source / "00009.parquet")

    # A truncated tar: the second image is cut in the middle.
    with tarfile.open(source / "00010.tar", "w") as tar:
        for key in ("000100000", "000100001"):
            _add(tar, f"{key}.jpg", face)
            _add(tar, f"{key}.json", json.dumps(_meta(key, "a face", face)).encode())
            _add(tar, f"{key}.txt", b"a face")
    data = (source / "00010.tar").read_bytes()
    cut = data.index(b"000100001.jpg") + 512 + len(face) // 2
    (source / "00010.tar").write_bytes(data[:cut])
    return source


EXPECTED_RAW = {
    "000090000": ("ok", None),
    "000090008": ("invalid", "missing_caption"),
    "000090009": ("invalid", "missing_metadata"),
    "000090010": ("ok", None),
    "000090011": ("failed_to_download", "HTTP Error 404: Not Found"),
}

EXPECTED_DETECTION = {
    "000090000": None,
    "000090001": "corrupt_image",
    "000090002": "corrupt_image",
    "000090003": "empty_image",
    "000090004": "image_too_large",
    "000090005": None,
    "000090006": None,
    "000090007": None,
    "000090008": "invalid_sample:missing_caption",
    "000090009": "invalid_sample:missing_metadata",
    "000090010": None,
    "000090011": "failed_to_download",
}


def test_list_shards_finds_the_sample_shards():
    assert list_shards(RAW_SHARDS) == ["00000", "00001"]
    with pytest.raises(FileNotFoundError, match="FLIP_SOURCE"):
        list_shards(RAW_SHARDS / "missing")


def test_sample_shard_rows_match_img2dataset_stats():
    table, facts = read_shard(RAW_SHARDS, "00000")
    stats = facts["img2dataset_stats"]
    rows = table.to_pylist()
    assert len(rows) == stats["count"] == 100
    assert sum(r["status"] == "ok" for r in rows) == stats["successes"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["caption"] and r["url"] and r["width"] > 0 and r["image_size"] > 0 for r in ok)
    # The recorded byte range really is the JPEG.
    assert decode_rgb(Path(ok[0]["tar_path"]).read_bytes()[ok[0]["image_offset"]:][: ok[0]["image_size"]], 10**8).rgb.shape[2] == 3


def test_damaged_shard_materializes_with_every_sample_accounted_for(broken_source, tmp_path, instance):
    from flip_assets.defs.curation.s01_raw_shards import raw_shards
    from flip_assets.defs.curation.s02_face_detections import face_detections

    result = run_assets([raw_shards, face_detections], make_resources(tmp_path, broken_source), instance, "00009")
    assert result.success
    raw = {r["key"]: r for r in pq.read_table(tmp_path / "raw_shards" / "00009.parquet").to_pylist()}
    assert set(raw) == set(EXPECTED_DETECTION)
    for key, (status, error) in EXPECTED_RAW.items():
        assert (raw[key]["status"], raw[key]["error"]) == (status, error), key
    assert raw["000090010"]["notes"] == "caption_not_utf8" and "portrait" in raw["000090010"]["caption"]

    det = {r["key"]: r for r in pq.read_table(tmp_path / "face_detections" / "00009.parquet").to_pylist()}
    for key, reason in EXPECTED_DETECTION.items():
        assert det[key]["drop_reason"] == reason, key
        assert det[key]["kept"] == (reason is None), key
    assert {det[k]["source_mode"] for k in ("000090005", "000090006", "000090007")} == {"CMYK", "L", "RGBA"}

    meta = result.asset_materializations_for_node("face_detections")[0].metadata
    outcomes = meta["outcomes"].value
    assert outcomes["kept"] == 5 and outcomes["corrupt_image"] == 2 and outcomes["image_too_large"] == 1
    assert sum(outcomes.values()) == meta["input_samples"].value == 12
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["every_sample_accounted_for"] and checks["boxes_inside_image"] and checks["scores_in_range"]


def test_truncated_tar_keeps_what_was_readable(broken_source, tmp_path, instance):
    from flip_assets.defs.curation.s01_raw_shards import raw_shards

    result = run_assets([raw_shards], make_resources(tmp_path, broken_source), instance, "00010")
    assert result.success
    rows = {r["key"]: r for r in pq.read_table(tmp_path / "raw_shards" / "00010.parquet").to_pylist()}
    assert rows["000100000"]["status"] == "ok"
    assert rows["000100001"]["status"] == "invalid" and "truncated" in rows["000100001"]["error"]
    assert "truncated" in result.asset_materializations_for_node("raw_shards")[0].metadata["tar_error"].value


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _encode(Image.new("1", (10000, 10000)), "PNG")
    with pytest.raises(ImageRejected) as err:
        decode_rgb(bomb, max_pixels=40_000_000)
    assert err.value.reason == "image_too_large" and "40000000 pixels" in err.value.detail


def test_interrupted_write_leaves_the_previous_file(tmp_path):
    path = storage.partition_path(tmp_path, "raw_shards", "00000")
    storage.write_table(path, pa.table({"x": [1]}))

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half a parquet file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.atomic_write_bytes(path, crash)
    assert pq.read_table(path).column("x").to_pylist() == [1]
    assert list(path.parent.iterdir()) == [path]
