"""face_detections: the RetinaFace visual filter on real sample shards and real 300-W faces."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from conftest import DATA, MODELS, make_resources, run_assets
from PIL import Image
from test_raw_shards import _encode, _face_jpeg, sample_members, write_tar

from flip_assets.core.curation.detectors import build_detector, retinaface_resnet50_weights
from flip_assets.core.evaluation.face_eval import evaluate, load_300w
from flip_assets.core.curation.retinaface import WeightsError, load_retinaface


@pytest.fixture(scope="module")
def retinaface():
    return build_detector("retinaface", MODELS)


@pytest.mark.slow
@pytest.mark.e2e
def test_sample_shards_keep_only_clear_faces(detected_home):
    """Another implementation of these weights keeps 13 of the 80 photos of shard 00000 at 0.9."""
    for shard in ("00000", "00001"):
        rows = pq.read_table(detected_home / "face_detections" / f"{shard}.parquet").to_pylist()
        raw = pq.read_table(detected_home / "raw_shards" / f"{shard}.parquet").to_pylist()
        assert [r["key"] for r in rows] == [r["key"] for r in raw]
        kept = [r for r in rows if r["kept"]]
        assert all(r["best_score"] > 0.9 and r["face_count"] >= 1 for r in kept)
        assert all(r["drop_reason"] for r in rows if not r["kept"])
        if shard == "00000":
            assert 11 <= len(kept) <= 15, len(kept)
        photos = [r for r in rows if r["drop_reason"] != "failed_to_download"]
        assert len(photos) == (80 if shard == "00000" else 79)
        for r in kept:
            for face in r["faces"]:
                x0, y0, x1, y1 = face["box"]
                assert 0 <= x0 < x1 <= r["image_width"] and 0 <= y0 < y1 <= r["image_height"]
                assert 0 < r["largest_face_share"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["faces_300w_afw", "faces_300w_helen_test"])
def test_recall_on_300w(retinaface, name):
    result = evaluate(name, load_300w(DATA / "eval" / f"{name}.parquet"), retinaface, threshold=0.9)
    assert result.labelled_faces > 300
    assert result.recall >= 0.97, result.as_dict()


@pytest.mark.slow
@pytest.mark.e2e
def test_threshold_is_configurable(detected_home, tmp_path, instance):
    """A stricter threshold keeps no more photos, and the metadata says which threshold applied."""
    from flip_assets.defs.curation.s01_raw_shards import raw_shards
    from flip_assets.defs.curation.s02_face_detections import face_detections

    result = run_assets([raw_shards, face_detections], make_resources(tmp_path, keep_threshold=0.995), instance, "00000")
    assert result.success
    strict = sum(r["kept"] for r in pq.read_table(tmp_path / "face_detections" / "00000.parquet").to_pylist())
    default = sum(r["kept"] for r in pq.read_table(detected_home / "face_detections" / "00000.parquet").to_pylist())
    assert strict < default
    meta = result.asset_materializations_for_node("face_detections")[0].metadata
    assert meta["keep_threshold"].value == 0.995
    assert meta["kept"].value == strict


def test_yunet_backend_finds_the_same_clear_faces(retinaface):
    pictures = load_300w(DATA / "eval" / "faces_300w_helen_test.parquet")[:40]
    result = evaluate("helen40", pictures, build_detector("yunet", MODELS, min_score=0.5), threshold=0.6)
    assert result.recall >= 0.9, result.as_dict()


def test_missing_weights_fail_fast_naming_the_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="nope.pth"):
        load_retinaface(missing)


def test_wrong_weights_fail_fast_naming_the_file(tmp_path):
    wrong = tmp_path / "retinaface_mobilenet0.25.pth"
    wrong.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=str(wrong)):
        load_retinaface(wrong)
    with pytest.raises(WeightsError, match="SHA-256"):
        build_detector("retinaface", tmp_path)


def test_retinaface_resnet50_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match=str(retinaface_resnet50_weights())):
        build_detector("retinaface_resnet50", MODELS)


def test_asset_run_with_missing_weights_fails_naming_the_file(tmp_path, instance):
    from flip_assets.defs.curation.resources import FaceDetectorResource
    from flip_assets.defs.curation.s01_raw_shards import raw_shards
    from flip_assets.defs.curation.s02_face_detections import face_detections

    resources = make_resources(tmp_path)
    resources["face_detector"] = FaceDetectorResource(models_dir=str(tmp_path / "no_models"))
    result = run_assets([raw_shards, face_detections], resources, instance, "00000")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no_models/retinaface_mobilenet0.25.pth" in str(failure.event_specific_data.error)
    assert not (tmp_path / "face_detections" / "00000.parquet").exists()


@pytest.mark.slow
def test_rewritten_tar_fails_instead_of_scoring_another_picture(tmp_path, instance):
    """Offsets recorded by raw_shards go stale when the tar is rewritten; the image must not be
    read from them blindly."""
    from flip_assets.defs.curation.s01_raw_shards import raw_shards
    from flip_assets.defs.curation.s02_face_detections import face_detections

    face = _face_jpeg()
    grey = _encode(Image.new("RGB", Image.open(io.BytesIO(face)).size, "grey"), "JPEG")
    # Same byte length (JPEG ignores what follows its end marker), so swapped samples swap pictures exactly.
    size = max(len(face), len(grey))
    face, grey = face.ljust(size, b"\0"), grey.ljust(size, b"\0")
    photo, square = sample_members("000400000", "photo A", face), sample_members("000400001", "photo B", grey)
    source, home = tmp_path / "source", tmp_path / "home"
    source.mkdir()
    write_tar(source / "00040.tar", photo + square)
    resources = make_resources(home, source)
    assert run_assets([raw_shards], resources, instance, "00040").success

    write_tar(source / "00040.tar", square + photo)
    result = run_assets([raw_shards, face_detections], resources, instance, "00040", selection=[face_detections])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.event_specific_data.error)
    assert "000400000" in message and "re-materialize raw_shards" in message
    assert not (home / "face_detections" / "00040.parquet").exists()

    # Re-materialized, each sample is scored on its own picture.
    assert run_assets([raw_shards, face_detections], resources, instance, "00040").success
    det = {r["key"]: r for r in pq.read_table(home / "face_detections" / "00040.parquet").to_pylist()}
    assert det["000400000"]["kept"] and det["000400001"]["drop_reason"] == "no_face"
