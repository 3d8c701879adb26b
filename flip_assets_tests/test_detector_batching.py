"""RetinaFace batching: an image's faces and scores do not depend on which images share its batch."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image
from conftest import DATA, MODELS

from flip_assets.core.curation.detectors import RetinaFaceDetector, pad_batches


@pytest.fixture(scope="module")
def detector():
    return RetinaFaceDetector(MODELS / "retinaface_mobilenet0.25.pth", batch_size=8)


# Photos of sample shard 00000 whose results the old shared padding changed when they were
# batched with NEIGHBOUR (512 x 512): face scores by up to 0.03, and the number of faces found.
KEYS = ("000000014", "000000015", "000000024", "000000050", "000000070")
NEIGHBOUR = "000000085"


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    with tarfile.open(DATA / "raw_shards" / "00000.tar") as tar:
        return {
            key: np.asarray(Image.open(io.BytesIO(tar.extractfile(f"{key}.jpg").read())).convert("RGB"))
            for key in (*KEYS, NEIGHBOUR)
        }


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_a_photo_gets_the_same_faces_alone_and_next_to_a_larger_one(detector, photos, key):
    [alone] = detector.detect([photos[key]])
    [_, batched] = detector.detect([photos[NEIGHBOUR], photos[key]])
    assert len(alone.scores) >= 1 and len(batched.scores) == len(alone.scores)
    np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-4)
    np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-2)  # pixels
    np.testing.assert_allclose(batched.landmarks, alone.landmarks, atol=1e-2)


def test_each_photo_is_padded_only_to_its_own_size_rounded_up_to_32(photos):
    """Every photo of a batch rounds up to the batch's shape, so none gets extra padding."""
    images = list(photos.values()) * 2
    seen = []
    for idx, batch in pad_batches(images, batch_size=3):
        assert len(idx) <= 3
        for i in idx:
            h, w = images[i].shape[:2]
            assert batch.shape[2:] == (-(-h // 32) * 32, -(-w // 32) * 32)
        seen += idx
    assert sorted(seen) == list(range(len(images)))
