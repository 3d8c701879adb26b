"""Visual filtering (paper 3.1): keep a sample when its best face scores above a threshold.

Every raw sample gets one output row, kept or dropped with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from flip_assets.core.curation.detectors import FaceDetector
from flip_assets.core.io.images import ImageRejected, decode_rgb, resize_longest_side
from flip_assets.core.io.shards import read_sample_image

FACE_TYPE = pa.struct(
    [
        ("score", pa.float32()),
        ("box", pa.list_(pa.float32(), 4)),  # x0, y0, x1, y1 in pixels of the stored image
        ("landmarks", pa.list_(pa.float32(), 10)),  # eyes, nose, mouth corners as x, y pairs
    ]
)

FACE_DETECTIONS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("kept", pa.bool_()),
        ("drop_reason", pa.string()),
        ("image_width", pa.int32()),
        ("image_height", pa.int32()),
        ("source_mode", pa.string()),
        ("face_count", pa.int32()),
        ("best_score", pa.float32()),
        ("largest_face_share", pa.float32()),
        ("faces", pa.list_(FACE_TYPE)),
    ]
)


def _chunks(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def detect_faces_in_shard(
    raw_rows: list[dict],
    detector: FaceDetector,
    keep_threshold: float,
    max_pixels: int,
    max_side: int,
    chunk_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """raw_rows: rows of the raw_shards asset. Decodes and detects in chunks to bound memory."""
    out: dict[str, dict] = {}
    ready = []
    for row in raw_rows:
        if row["status"] != "ok":
            reason = "failed_to_download" if row["status"] == "failed_to_download" else f"invalid_sample:{row['error']}"
            out[row["key"]] = {"key": row["key"], "kept": False, "drop_reason": reason}
        else:
            ready.append(row)

    done = 0
    for chunk in _chunks(ready, chunk_size):
        images, scales, decoded_rows = [], [], []
        for row in chunk:
            try:
                decoded = decode_rgb(read_sample_image(row), max_pixels)
            except ImageRejected as exc:
                out[row["key"]] = {"key": row["key"], "kept": False, "drop_reason": exc.reason}
                continue
            small, scale = resize_longest_side(decoded.rgb, max_side)
            images.append(small)
            scales.append(scale)
            decoded_rows.append((row, decoded))
        for (row, decoded), scale, det in zip(decoded_rows, scales, detector.detect(images)):
            h, w = decoded.rgb.shape[:2]
            boxes = det.boxes / scale
            points = det.landmarks / scale
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            best = float(det.scores.max()) if len(det.scores) else None
            if best is None:
                reason = "no_face"
            elif best <= keep_threshold:
                reason = "face_score_below_threshold"
            else:
                reason = None
            out[row["key"]] = {
                "key": row["key"],
                "kept": reason is None,
                "drop_reason": reason,
                "image_width": w,
                "image_height": h,
                "source_mode": decoded.source_mode,
                "face_count": int((det.scores > keep_threshold).sum()),
                "best_score": best,
                "largest_face_share": float(areas.max() / (w * h)) if len(areas) else 0.0,
                "faces": [
                    {"score": float(s), "box": b.tolist(), "landmarks": p.reshape(-1).tolist()}
                    for s, b, p in zip(det.scores, boxes.astype(np.float32), points.astype(np.float32))
                ],
            }
        done += len(chunk)
        if progress:
            progress(done, len(ready))
    rows = [out[r["key"]] for r in raw_rows]
    return pa.Table.from_pylist(rows, schema=FACE_DETECTIONS_SCHEMA)
