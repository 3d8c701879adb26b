"""Visual filtering (paper 3.1): keep a sample when its best face scores above a threshold.

Every raw sample gets one output row, kept or dropped with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

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


# Threads decoding a shard's JPEGs while the detector runs: Pillow releases the GIL while it
# decodes and resizes, so threads overlap both with each other and with the forward.
DECODE_THREADS = min(4, os.cpu_count() or 1)


def _chunks(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@dataclass
class _Prepared:
    """What detection needs of one sample: the image shrunk to max_side, the scale applied, and
    the stored image's size and mode. The full-size decode is not kept (it can be 40 MP)."""

    small: np.ndarray
    scale: float
    width: int
    height: int
    source_mode: str


def _prepare(row: dict, max_pixels: int, max_side: int) -> _Prepared | ImageRejected:
    try:
        decoded = decode_rgb(read_sample_image(row), max_pixels)
    except ImageRejected as exc:
        return exc
    h, w = decoded.rgb.shape[:2]
    small, scale = resize_longest_side(decoded.rgb, max_side)
    return _Prepared(small, scale, w, h, decoded.source_mode)


def detect_faces_in_shard(
    raw_rows: list[dict],
    detector: FaceDetector,
    keep_threshold: float,
    max_pixels: int,
    max_side: int,
    chunk_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    decode_threads: int = DECODE_THREADS,
) -> pa.Table:
    """raw_rows: rows of the raw_shards asset. Decodes and detects in chunks to bound memory;
    the next chunk decodes in `decode_threads` threads while the detector runs on this one
    (0: each chunk decoded in the calling thread before its detection, nothing overlapping)."""
    out: dict[str, dict] = {}
    ready = []
    for row in raw_rows:
        if row["status"] != "ok":
            reason = "failed_to_download" if row["status"] == "failed_to_download" else f"invalid_sample:{row['error']}"
            out[row["key"]] = {"key": row["key"], "kept": False, "drop_reason": reason}
        else:
            ready.append(row)

    chunks = list(_chunks(ready, chunk_size))
    done = 0
    with ThreadPoolExecutor(max(1, decode_threads), thread_name_prefix="decode") as pool:

        def submit(chunk: list[dict]) -> list[Future]:
            if decode_threads == 0:
                return [_done(_prepare(row, max_pixels, max_side)) for row in chunk]
            return [pool.submit(_prepare, row, max_pixels, max_side) for row in chunk]

        pending = submit(chunks[0]) if chunks else []
        for n, chunk in enumerate(chunks):
            prepared = [f.result() for f in pending]  # in row order, whatever order they finished in
            pending = submit(chunks[n + 1]) if n + 1 < len(chunks) else []
            decoded_rows = []
            for row, item in zip(chunk, prepared):
                if isinstance(item, ImageRejected):
                    out[row["key"]] = {"key": row["key"], "kept": False, "drop_reason": item.reason}
                else:
                    decoded_rows.append((row, item))
            detections = detector.detect([item.small for _, item in decoded_rows])
            for (row, item), det in zip(decoded_rows, detections):
                _record(out, row, item, det, keep_threshold)
            done += len(chunk)
            if progress:
                progress(done, len(ready))
    rows = [out[r["key"]] for r in raw_rows]
    return pa.Table.from_pylist(rows, schema=FACE_DETECTIONS_SCHEMA)


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _record(out: dict[str, dict], row: dict, item: _Prepared, det, keep_threshold: float) -> None:
    w, h, scale = item.width, item.height, item.scale
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
        "source_mode": item.source_mode,
        "face_count": int((det.scores > keep_threshold).sum()),
        "best_score": best,
        "largest_face_share": float(areas.max() / (w * h)) if len(areas) else 0.0,
        "faces": [
            {"score": float(s), "box": b.tolist(), "landmarks": p.reshape(-1).tolist()}
            for s, b, p in zip(det.scores, boxes.astype(np.float32), points.astype(np.float32))
        ],
    }
