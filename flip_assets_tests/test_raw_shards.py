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
from dagster import AssetCheckSeverity
from PIL import Image

from flip_assets.core.io import storage
from flip_assets.core.io.images import ImageRejected, decode_rgb
from flip_assets.core.io.shards import SHARD_FILES, list_shards, read_shard, shard_version


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


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            _add(tar, name, data)


def sample_members(key: str, caption: str, img: bytes, **fields) -> list[tuple[str, bytes]]:
    """KEY.jpg, KEY.json, KEY.txt as img2dataset writes a successful sample; fields override the JSON."""
    meta = {**_meta(key, caption, img), **fields}
    return [(f"{key}.jpg", img), (f"{key}.json", json.dumps(meta).encode()), (f"{key}.txt", caption.encode())]


def check_evaluations(result) -> dict:
    return {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}


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
    # Every shard with a tar in the sample folder (two COCO, then the Flickr8k people photos), sorted.
    expected = sorted(p.stem for p in RAW_SHARDS.glob("*.tar"))
    assert expected[:2] == ["00000", "00001"] and len(expected) >= 10
    assert list_shards(RAW_SHARDS) == expected
    with pytest.raises(FileNotFoundError, match="FLIP_SOURCE"):
        list_shards(RAW_SHARDS / "missing")


def test_list_shards_registers_only_regular_files(tmp_path):
    (tmp_path / "00030.tar").mkdir()
    (tmp_path / "00031.tar").symlink_to(tmp_path / "gone.tar")
    write_tar(tmp_path / "00032.tar", [])
    (tmp_path / "00033.tar").symlink_to(tmp_path / "00032.tar")
    assert list_shards(tmp_path) == ["00032", "00033"]


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


@pytest.mark.slow
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


def test_wrong_typed_fields_become_invalid_rows_naming_the_field(tmp_path, instance):
    from flip_assets.defs.curation.s01_raw_shards import raw_shards

    source = tmp_path / "source"
    source.mkdir()
    face = _face_jpeg()
    bad = {
        "000200001": {"status": 3},
        "000200002": {"sha256": 123},
        "000200003": {"status": "failed_to_download", "error_message": 5},
        "000200004": {"url": {"host": "example.com"}},
        "000200005": {"width": "wide"},
        "000200006": {"height": 10**12},
        "000200009": {"width": float("nan")},
    }
    members = sample_members("000200000", "good", face)
    for key, fields in bad.items():
        members += sample_members(key, "bad", face, **fields)
    # The JSON is a list, not an object; only 000200008 has a parquet row to fall back on.
    for key in ("000200007", "000200008"):
        members += [(f"{key}.jpg", face), (f"{key}.json", b"[1, 2]"), (f"{key}.txt", b"a list")]
    members.append(("extras.d/README", b"not a sample: no extension"))
    write_tar(source / "00020.tar", members)
    pq.write_table(pa.Table.from_pylist([_meta(k, "good", face) for k in ("000200000", "000200008")]), source / "00020.parquet")

    result = run_assets([raw_shards], make_resources(tmp_path / "home", source), instance, "00020")
    assert result.success
    rows = {r["key"]: r for r in pq.read_table(tmp_path / "home" / "raw_shards" / "00020.parquet").to_pylist()}
    assert {k: (r["status"], r["error"]) for k, r in rows.items()} == {
        "000200000": ("ok", None),
        "000200001": ("invalid", "bad_field:status"),
        "000200002": ("invalid", "bad_field:sha256"),
        "000200003": ("invalid", "bad_field:error_message"),
        "000200004": ("invalid", "bad_field:url"),
        "000200005": ("invalid", "bad_field:width"),
        "000200006": ("invalid", "bad_field:height"),
        "000200007": ("invalid", "json_not_object"),
        "000200008": ("ok", None),
        "000200009": ("invalid", "bad_field:width"),
    }
    assert rows["000200005"]["width"] is None and rows["000200004"]["url"] is None
    assert rows["000200008"]["notes"] == "json_not_object" and rows["000200008"]["url"].endswith("000200008.jpg")
    breakdown = result.asset_materializations_for_node("raw_shards")[0].metadata["error_breakdown"].value
    assert breakdown["bad_field:status"] == 1 and breakdown["ok"] == 2 and sum(breakdown.values()) == 10


@pytest.mark.slow
def test_duplicate_keys_keep_the_first_complete_copy(tmp_path, instance):
    from flip_assets.defs.curation.s01_raw_shards import raw_shards
    from flip_assets.defs.curation.s02_face_detections import face_detections

    source = tmp_path / "source"
    source.mkdir()
    first, second = _face_jpeg(0), _face_jpeg(1)
    write_tar(
        source / "00021.tar",
        sample_members("000210000", "first copy", first)
        + sample_members("000210001", "other", first)
        + sample_members("000210000", "second copy", second, url="http://example.com/other.jpg")
        + sample_members("000210002", "incomplete copy", second)[:2]  # no .txt
        + sample_members("000210002", "complete copy", first),
    )
    keys = ("000210000", "000210001", "000210002")
    pq.write_table(pa.Table.from_pylist([_meta(k, "listed", first) for k in keys]), source / "00021.parquet")
    (source / "00021_stats.json").write_text(json.dumps({"count": 3, "successes": 3}))

    result = run_assets([raw_shards, face_detections], make_resources(tmp_path / "home", source), instance, "00021")
    assert result.success
    rows = {r["key"]: r for r in pq.read_table(tmp_path / "home" / "raw_shards" / "00021.parquet").to_pylist()}
    assert {k: (r["status"], r["error"], r["caption"]) for k, r in rows.items()} == {
        "000210000": ("ok", None, "first copy"),
        "000210000.dup2": ("invalid", "duplicate_key", "second copy"),
        "000210001": ("ok", None, "other"),
        "000210002": ("ok", None, "complete copy"),
        "000210002.dup1": ("invalid", "duplicate_key", "incomplete copy"),
    }
    kept = rows["000210000"]
    tar_bytes = (source / "00021.tar").read_bytes()
    assert tar_bytes[kept["image_offset"] :][: kept["image_size"]] == first
    assert kept["url"] == "http://example.com/000210000.jpg"

    checks = check_evaluations(result)
    unique = checks[("raw_shards", "unique_keys")]
    # Noticed, but as a warning: every copy has its own row, so later stages can still run.
    assert not unique.passed and unique.severity == AssetCheckSeverity.WARN
    assert unique.metadata["duplicate_copies"].value == 2 and unique.metadata["duplicate_keys"].value == 0
    assert not checks[("raw_shards", "matches_img2dataset_stats")].passed
    assert checks[("face_detections", "unique_keys")].passed
    assert checks[("face_detections", "every_sample_accounted_for")].passed
    det = {r["key"]: r for r in pq.read_table(tmp_path / "home" / "face_detections" / "00021.parquet").to_pylist()}
    assert det["000210000.dup2"]["drop_reason"] == det["000210002.dup1"]["drop_reason"] == "invalid_sample:duplicate_key"
    assert det["000210000"]["kept"]


@pytest.fixture(scope="module")
def sidecar_source(tmp_path_factory) -> Path:
    """Shards whose tar, parquet or stats file is missing or broken."""
    source = tmp_path_factory.mktemp("sidecar_source")
    face = _face_jpeg()
    for shard in ("00022", "00023", "00025"):
        write_tar(source / f"{shard}.tar", sample_members(f"{shard}0000", "a face", face))
    (source / "00023.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    (source / "00023_stats.json").write_text("{not json")
    (source / "00024.tar").write_bytes(b"")
    for shard in ("00024", "00025"):
        pq.write_table(pa.Table.from_pylist([_meta(f"{shard}0000", "a face", face)]), source / f"{shard}.parquet")
    (source / "00024_stats.json").write_text(json.dumps({"count": 1, "successes": 1}))
    (source / "00025_stats.json").write_text("[1, 2]")
    return source


@pytest.mark.parametrize(
    "shard, problems",
    [
        ("00022", ["00022.parquet missing", "00022_stats.json missing"]),
        ("00023", ["00023.parquet unusable", "00023_stats.json unusable"]),
        ("00024", ["00024.tar is empty"]),
        ("00025", ["00025_stats.json unusable"]),
    ],
)
def test_missing_or_broken_shard_files_fail_a_warning_check(sidecar_source, shard, problems, tmp_path, instance):
    from flip_assets.defs.curation.s01_raw_shards import raw_shards

    result = run_assets([raw_shards], make_resources(tmp_path, sidecar_source), instance, shard)
    assert result.success
    checks = check_evaluations(result)
    intact = checks[("raw_shards", "shard_files_intact")]
    assert not intact.passed and intact.severity == AssetCheckSeverity.WARN
    found = intact.metadata["problems"].value
    assert len(found) == len(problems) and all(f.startswith(p) for f, p in zip(found, problems)), found
    assert result.asset_materializations_for_node("raw_shards")[0].metadata["shard_problems"].value == found
    assert not checks[("raw_shards", "matches_img2dataset_stats")].passed
    [row] = pq.read_table(tmp_path / "raw_shards" / f"{shard}.parquet").to_pylist()
    if shard == "00024":
        assert row["status"] == "invalid" and "missing_image" in row["error"] and "empty" in row["error"]
    else:
        assert row["status"] == "ok"


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


def test_materialization_reports_rows_and_columns_of_its_file(tmp_path, instance):
    """The catalog's row count and column schema (Dagster's standard table metadata) are the
    published file's own."""
    from flip_assets.defs.curation.s01_raw_shards import raw_shards

    result = run_assets([raw_shards], make_resources(tmp_path), instance, "00000")
    assert result.success
    meta = result.asset_materializations_for_node("raw_shards")[0].metadata
    written = pq.ParquetFile(tmp_path / "raw_shards" / "00000.parquet")
    assert meta["dagster/row_count"].value == written.metadata.num_rows == 100
    columns = meta["dagster/column_schema"].value.columns
    assert [(c.name, c.type) for c in columns] == [(f.name, str(f.type)) for f in written.schema_arrow]


def test_a_shards_version_is_its_bytes_and_code_version_wherever_it_is(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in SHARD_FILES:
        (copy / f"00000{suffix}").write_bytes((RAW_SHARDS / f"00000{suffix}").read_bytes())
    version = shard_version(RAW_SHARDS, "00000", "1")
    assert shard_version(copy, "00000", "1") == version  # same bytes elsewhere: same version
    assert shard_version(RAW_SHARDS, "00001", "1") != version
    assert shard_version(copy, "00000", "2") != version  # new code: a new version
    stats = json.loads((copy / "00000_stats.json").read_text())
    (copy / "00000_stats.json").write_text(json.dumps({**stats, "count": stats["count"] + 1}))
    changed = shard_version(copy, "00000", "1")
    assert changed != version
    (copy / "00000_stats.json").unlink()  # a missing sidecar is a version of its own
    assert shard_version(copy, "00000", "1") not in (version, changed)
