"""detect_faces_in_shard decodes the next chunk's JPEGs in threads while the detector runs on
this one (issue 23, item 4): every sample's row must be what serial decoding gives, an
undecodable sample kept with its reason."""

from __future__ import annotations

import hashlib

import pytest
from conftest import DATA, MODELS

from flip_assets.core.curation.detectors import build_detector
from flip_assets.core.curation.face_filter import detect_faces_in_shard
from flip_assets.core.io.images import MAX_PIXELS
from flip_assets.core.io.shards import read_shard


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    shard = read_shard(DATA / "raw_shards", "00000")[0].to_pylist()
    ok = [r for r in shard if r["status"] == "ok"][:9]
    failed = [r for r in shard if r["status"] != "ok"][:1]
    # A JPEG cut short, in a file of its own, its hash recorded as raw_shards would.
    with open(ok[0]["tar_path"], "rb") as f:
        f.seek(ok[0]["image_offset"])
        truncated = f.read(ok[0]["image_size"] // 2)
    path = tmp_path_factory.mktemp("corrupt") / "truncated.bin"
    path.write_bytes(truncated)
    corrupt = {**ok[0], "key": "truncated", "tar_path": str(path), "image_offset": 0,
               "image_size": len(truncated), "image_sha256": hashlib.sha256(truncated).hexdigest()}  # fmt: skip
    return [*ok[:4], corrupt, *failed, *ok[4:]]


def test_threaded_decoding_gives_every_sample_the_rows_of_serial_decoding(rows):
    detector = build_detector("retinaface", MODELS)

    def run(threads: int):
        # Chunks of 3: several chunks, each decoded while the previous one is detected.
        return detect_faces_in_shard(rows, detector, 0.9, MAX_PIXELS, 1024, chunk_size=3, decode_threads=threads)

    serial, threaded = run(0), run(3)
    assert threaded.to_pylist() == serial.to_pylist()
    by_key = {r["key"]: r for r in threaded.to_pylist()}
    assert [r["key"] for r in threaded.to_pylist()] == [r["key"] for r in rows]
    assert by_key["truncated"]["kept"] is False and by_key["truncated"]["drop_reason"] == "corrupt_image"
    assert sum(r["kept"] for r in threaded.to_pylist()) > 0
