"""A release written in its schema (core/release/release.py) for the real sample shards, from
their real raw_shards and face_detections files: the input of the analytics tests, independent
of how flip_release decides what to release.

Per shard, every sample face_detections kept becomes a kept face-text pair and an LLM-denoised
caption; the last such sample of each shard is excluded as a near duplicate of the first, the
others are released with their real URL, caption, size, hash, boxes and landmarks.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from flip_assets.core.io import storage
from flip_assets.core.curation.denoiser import DENOISED_SCHEMA
from flip_assets.core.curation.face_text_pairs import FACE_TEXT_PAIRS_SCHEMA
from flip_assets.core.release.release import EXCLUSIONS_SCHEMA, RELEASE_SCHEMA

FACE_WORDS = frozenset("man woman boy girl person face smiling smile people player".split())


def _write(home: Path, asset: str, shard: str, rows: list[dict], schema: pa.Schema) -> None:
    storage.write_table(storage.partition_path(home, asset, shard), pa.Table.from_pylist(rows, schema=schema))


def write_release(home: Path, shard: str) -> None:
    """face_text_pairs, denoised_captions, flip_release and release_exclusions of one shard whose
    raw_shards and face_detections are under home."""
    raw = {r["key"]: r for r in storage.read_table(storage.partition_path(home, "raw_shards", shard)).to_pylist()}
    faces = [r for r in storage.read_table(storage.partition_path(home, "face_detections", shard)).to_pylist() if r["kept"]]
    pairs, denoised, released, excluded = [], [], [], []
    for n, face in enumerate(faces):
        sample = raw[face["key"]]
        caption = sample["caption"]
        keywords = sorted({w.strip(".,").lower() for w in caption.split()} & FACE_WORDS)
        pairs.append({
            "key": face["key"], "url": sample["url"], "caption": caption, "width": sample["width"],
            "height": sample["height"], "text_score": 0.9, "keywords": keywords, "kept": True, "drop_reason": None,
        })  # fmt: skip
        denoised.append({
            "key": face["key"], "url": sample["url"], "caption": caption, "keywords": keywords, "precleaned": caption,
            "denoised": caption.strip(), "outcome": "llm", "cached": False, "prompt_tokens": 0, "completion_tokens": 0,
        })  # fmt: skip
        if n == len(faces) - 1 and n > 0:
            excluded.append({
                "key": face["key"], "shard": shard, "reason": "near_duplicate",
                "duplicate_of": faces[0]["key"], "duplicate_of_shard": shard,
            })  # fmt: skip
            continue
        kept = [f for f in face["faces"] if f["score"] > 0.9]
        released.append({
            "key": face["key"], "shard": shard, "URL": sample["url"], "TEXT": caption.strip(),
            "original_caption": caption, "KEYWORDS": keywords, "HEIGHT": face["image_height"],
            "WIDTH": face["image_width"], "NSFW": "NSFW" if n == 1 else "UNLIKELY", "nsfw_score": 0.9 if n == 1 else 0.01,
            "laion_nsfw": "UNLIKELY" if n == 0 else None, "sha256": sample["image_sha256"], "face_count": len(kept),
            "face_score": face["best_score"], "face_boxes": [f["box"] for f in kept],
            "face_landmarks": [f["landmarks"] for f in kept], "text_score": 0.9, "denoise_outcome": "llm",
        })  # fmt: skip
    _write(home, "face_text_pairs", shard, pairs, FACE_TEXT_PAIRS_SCHEMA)
    _write(home, "denoised_captions", shard, denoised, DENOISED_SCHEMA)
    _write(home, "flip_release", shard, released, RELEASE_SCHEMA)
    _write(home, "release_exclusions", shard, excluded, EXCLUSIONS_SCHEMA)


def write_empty_shard(home: Path, shard: str) -> None:
    """Every stage file of a shard with no sample at all."""
    from flip_assets.core.curation.face_filter import FACE_DETECTIONS_SCHEMA
    from flip_assets.core.io.shards import RAW_SHARD_SCHEMA

    for asset, schema in (
        ("raw_shards", RAW_SHARD_SCHEMA), ("face_detections", FACE_DETECTIONS_SCHEMA),
        ("face_text_pairs", FACE_TEXT_PAIRS_SCHEMA), ("denoised_captions", DENOISED_SCHEMA),
        ("flip_release", RELEASE_SCHEMA), ("release_exclusions", EXCLUSIONS_SCHEMA),
    ):  # fmt: skip
        _write(home, asset, shard, [], schema)
