"""The release (paper 3.2): one row per released face-text sample, under LAION's field names.

Per shard, every candidate (a face-text pair the denoiser gave a caption) is first described
once (`build_candidates`: fields of every stage, NSFW score, perceptual hash); deduplication is
then decided over the candidates of all shards (core/release/dedup.py), and `split_release` sends each
candidate to the release or to the exclusions with one reason. Cheap settings (NSFW thresholds
and action, the blocklist) apply in the split, so changing them needs no image read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flip_assets.core.io import storage
from flip_assets.core.io.storage import described
from flip_assets.core.release.blocklist import Blocklist
from flip_assets.core.release.dedup import KEPT, Verdict, perceptual_hash
from flip_assets.core.io.images import ImageRejected, decode_rgb
from flip_assets.core.curation.keywords import KeywordMatcher
from flip_assets.core.release.nsfw import NSFW, NsfwClassifier, NsfwThresholds
from flip_assets.core.io.shards import read_sample_image

_FLOATS = pa.list_(pa.list_(pa.float32()))
MISSING_FROM = "missing_from:"  # release_candidates_input.sql's prefix

# The agreed interface (notes: release schema); column order is part of it. The descriptions
# travel in the Parquet files and show in the UI's column schema.
RELEASE_SCHEMA = pa.schema(
    [
        described("key", pa.string(), "The sample's key in its img2dataset shard; unique in the release."),
        described("shard", pa.string(), "The img2dataset shard (the Dagster partition) the sample comes from, e.g. 00000."),
        described("URL", pa.string(), "Where the image was downloaded from, as in the source metadata."),
        described("TEXT", pa.string(), "The denoised caption: the original one rewritten to describe the face (paper 3.2)."),
        described("original_caption", pa.string(), "The caption as downloaded, before pre-cleaning and denoising."),
        described("KEYWORDS", pa.list_(pa.string()), "The face keywords (face_keywords) found in TEXT."),
        described("HEIGHT", pa.int32(), "Image height in pixels, as stored in the shard: the pixels face_boxes refer to."),
        described("WIDTH", pa.int32(), "Image width in pixels, as stored in the shard."),
        described("NSFW", pa.string(), "UNLIKELY, UNSURE or NSFW: nsfw_score against the release's two thresholds."),
        described("nsfw_score", pa.float32(), "Our image classifier's score (NudeNet: best exposed intimate part), 0 to 1."),
        described("laion_nsfw", pa.string(), "The source metadata's own NSFW tag; null when it has none."),
        described("sha256", pa.string(), "SHA-256 of the image bytes in the shard (raw_shards.image_sha256)."),
        described("face_count", pa.int32(), "Faces the detector found in the image."),
        described("face_score", pa.float32(), "The detector's confidence in its best face, 0 to 1."),
        described("face_boxes", _FLOATS, "[x1, y1, x2, y2] of each face, in pixels of the stored image."),
        described("face_landmarks", _FLOATS, "Five (x, y) points per face: eyes, nose tip, mouth corners; pixels."),
        described("text_score", pa.float32(), "The caption classifier's probability that the caption describes the face."),
        described("denoise_outcome", pa.string(), "How TEXT was made: llm (rewritten by the language model) or fallback (the pre-cleaned caption)."),
    ]
)
_NOT_IN_CANDIDATES = {"NSFW"}
# What a shard's candidates hold: the release fields but the NSFW label (it depends on the
# thresholds), and what the split and the dedup need.
CANDIDATES_SCHEMA = pa.schema(
    [f for f in RELEASE_SCHEMA if f.name not in _NOT_IN_CANDIDATES]
    + [
        pa.field("source_sha256", pa.string()),  # img2dataset's sha256 of the downloaded file
        pa.field("phash", pa.string()),  # 64-bit perceptual hash, 16 hex digits
        pa.field("image_problem", pa.string()),  # why the image could not be read; null when it could
    ]
)
EXCLUSIONS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("reason", pa.string()),
        ("duplicate_of", pa.string()),  # key of the kept first occurrence (duplicates only)
        ("duplicate_of_shard", pa.string()),
    ]
)
BLOCKLISTED, NSFW_REASON, IMAGE_UNREADABLE = "blocklisted", "nsfw", "image_unreadable"
MISSING_UPSTREAM = "missing_upstream"  # a stage file lacks the candidate (image_problem names it)
TEXT_LENGTH = "text_length_out_of_bounds"
# Order of precedence: a candidate has one reason, the first that applies.
EXCLUSION_REASONS = (
    MISSING_UPSTREAM, IMAGE_UNREADABLE, BLOCKLISTED, "duplicate_sha256", "near_duplicate", NSFW_REASON, TEXT_LENGTH,
)  # fmt: skip
NSFW_ACTIONS = ("tag", "drop")

# Columns each stage file must have for the candidates query, with their types.
STAGE_COLUMNS = {
    "denoised_captions": {"key": pa.string(), "caption": pa.string(), "denoised": pa.string(), "outcome": pa.string()},
    "face_text_pairs": {"key": pa.string(), "text_score": pa.float32()},
    "face_detections": {
        "key": pa.string(), "image_width": pa.int32(), "image_height": pa.int32(), "face_count": pa.int32(),
        "best_score": pa.float32(),
    },
    "raw_shards": {
        "key": pa.string(), "url": pa.string(), "sha256": pa.string(), "tar_path": pa.string(),
        "image_offset": pa.int64(), "image_size": pa.int64(), "image_sha256": pa.string(),
    },
}  # fmt: skip


class StageSchemaError(ValueError):
    """A stage file lacks a column the release reads, or has it with another type."""


def require_columns(path: Path, columns: dict[str, pa.DataType]) -> None:
    """Fail naming the file and the column when `path` does not have `columns` with these types."""
    schema = pq.read_schema(path)
    for name, kind in columns.items():
        if name not in schema.names:
            raise StageSchemaError(f"{path}: no column {name!r} (has {', '.join(schema.names)}); re-materialize it")
        if not schema.field(name).type.equals(kind):
            raise StageSchemaError(f"{path}: column {name!r} is {schema.field(name).type}, expected {kind}; re-materialize it")


def source_nsfw_tags(sidecar: Path) -> dict[str, str]:
    """key -> the source's own NSFW tag (LAION's NSFW column, kept by img2dataset with
    --save_additional_columns), from the shard's .parquet; empty when it has no such column."""
    if not sidecar.is_file():
        return {}
    schema = pq.read_schema(sidecar)
    column = next((n for n in schema.names if n.upper() == "NSFW"), None)
    if column is None or "key" not in schema.names:
        return {}
    rows = pq.read_table(sidecar, columns=["key", column]).to_pylist()
    return {str(r["key"]): str(r[column]) for r in rows if r["key"] is not None and r[column] is not None}


def _faces(faces: list[dict] | None, count: int) -> tuple[list, list]:
    """The boxes and landmarks of the `count` faces face_detections counted (those above its
    threshold, so the best-scoring ones), best first; weaker detections are not released."""
    faces = sorted(faces or [], key=lambda f: f["score"], reverse=True)[:count]
    return [list(f["box"]) for f in faces], [list(f["landmarks"]) for f in faces]


def build_candidates(
    rows: list[dict],
    shard: str,
    matcher: KeywordMatcher,
    source_tags: dict[str, str],
    classifier: NsfwClassifier,
    max_pixels: int,
    chunk_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """rows: release_candidates_input.sql. Images are read from the shard tar (checked against
    raw_shards' hash) and decoded in chunks to bound memory; one that cannot be read keeps its
    row with image_problem set (it is excluded, never lost)."""
    out = []
    for start in range(0, len(rows), chunk_size):
        chunk, images, scored = rows[start : start + chunk_size], [], []
        for row in chunk:
            boxes, landmarks = _faces(row["faces"], row["face_count"] or 0)
            record = {
                "key": row["key"], "shard": shard, "URL": row["url"], "TEXT": row["text"],
                "original_caption": row["original_caption"], "KEYWORDS": matcher.find(row["text"]),
                "HEIGHT": row["height"], "WIDTH": row["width"], "nsfw_score": None,
                "laion_nsfw": source_tags.get(row["key"]), "sha256": row["image_sha256"],
                "face_count": row["face_count"], "face_score": row["face_score"], "face_boxes": boxes,
                "face_landmarks": landmarks, "text_score": row["text_score"], "denoise_outcome": row["denoise_outcome"],
                "source_sha256": row["source_sha256"], "phash": None, "image_problem": row["missing_from"],
            }  # fmt: skip
            if record["image_problem"] is None:
                try:
                    rgb = decode_rgb(read_sample_image(row), max_pixels).rgb
                except ImageRejected as exc:
                    record["image_problem"] = exc.reason
                else:
                    record["phash"] = perceptual_hash(rgb)
                    images.append(rgb)
                    scored.append(record)
            out.append(record)
        for record, score in zip(scored, classifier.scores(images)):
            record["nsfw_score"] = float(score)
        if progress:
            progress(min(start + chunk_size, len(rows)), len(rows))
    return pa.Table.from_pylist(out, schema=CANDIDATES_SCHEMA)


@dataclass(frozen=True)
class ReleasePolicy:
    thresholds: NsfwThresholds
    nsfw_action: str  # tag | drop
    blocklist: Blocklist
    text_chars: tuple[int, int] = (1, 2000)  # bounds on the released caption's length


def split_release(
    candidates: Iterable[dict], verdicts: dict[str, Verdict], policy: ReleasePolicy
) -> tuple[pa.Table, pa.Table]:
    """(release, exclusions) of one shard's candidates; verdicts: key -> dedup verdict. Reasons
    in the order of EXCLUSION_REASONS (a caption of a length out of bounds is excluded, so the
    blocking expectation on it never stops a whole shard for one page dump). Duplicates are decided over all candidates before any
    filter, so the copy of a blocklisted or NSFW image never takes its place."""
    released, excluded = [], []
    for c in candidates:
        verdict = verdicts[c["key"]]
        label = policy.thresholds.label(c["nsfw_score"]) if c["nsfw_score"] is not None else None
        reason = None
        if c["image_problem"] is not None:
            reason = MISSING_UPSTREAM if c["image_problem"].startswith(MISSING_FROM) else IMAGE_UNREADABLE
        elif policy.blocklist.reason(c["URL"], c["sha256"], c["source_sha256"]):
            reason = BLOCKLISTED
        elif verdict.status != KEPT:
            reason = verdict.status
        elif policy.nsfw_action == "drop" and NSFW in (label, (c["laion_nsfw"] or "").upper()):
            reason = NSFW_REASON
        elif not policy.text_chars[0] <= len(c["TEXT"] or "") <= policy.text_chars[1]:
            reason = TEXT_LENGTH
        if reason is None:
            released.append({**{name: c[name] for name in RELEASE_SCHEMA.names if name != "NSFW"}, "NSFW": label})
        else:
            duplicate = reason == verdict.status
            excluded.append({
                "key": c["key"], "shard": c["shard"], "reason": reason,
                "duplicate_of": verdict.duplicate_of if duplicate else None,
                "duplicate_of_shard": verdict.duplicate_of_shard if duplicate else None,
            })  # fmt: skip
    return (
        pa.Table.from_pylist(released, schema=RELEASE_SCHEMA),
        pa.Table.from_pylist(excluded, schema=EXCLUSIONS_SCHEMA),
    )


def unmatched_blocklist_entries(blocklist: Blocklist, candidates: str) -> list[str]:
    """The blocklist entries that list no candidate in the files `candidates` (the glob of every
    published shard's): a takedown that removes nothing is a typo, or a sample not in the data.
    A blocklist is global, so it is judged against all shards, not the one being split; DuckDB
    keeps only the candidates with a listed hash or host, so few rows are compared in Python."""
    if not len(blocklist):
        return []
    rows = storage.query(
        storage.sql_file("blocklist_candidates.sql"),
        candidates=candidates, hashes=sorted(blocklist.sha256s), hosts=blocklist.hosts(),
    )  # fmt: skip
    return blocklist.unmatched((r["URL"], r["sha256"], r["source_sha256"]) for r in rows)


# The AIGC subset (paper 3.1): the release fields that apply to a generated image, its source
# sample, and the models that made it. The image itself is in `image`: it has no URL.
AIGC_RELEASE_SCHEMA = pa.schema(
    [
        described("key", pa.string(), "aigc- and the source sample's key."),
        described("shard", pa.string(), "The source sample's shard."),
        described("URL", pa.string(), "Always null: a generated image is not on the web (it is in `image`)."),
        described("TEXT", pa.string(), "The recaption that prompted the image."),
        described("original_caption", pa.string(), "The source sample's original caption."),
        described("KEYWORDS", pa.list_(pa.string()), "The face keywords found in TEXT."),
        described("HEIGHT", pa.int32(), "Generated image height in pixels."),
        described("WIDTH", pa.int32(), "Generated image width in pixels."),
        described("NSFW", pa.string(), "UNLIKELY, UNSURE or NSFW: nsfw_score against the release's thresholds."),
        described("nsfw_score", pa.float32(), "Our image classifier's score of the generated image, 0 to 1."),
        described("laion_nsfw", pa.string(), "The source sample's NSFW tag in its metadata; null when it has none."),
        described("sha256", pa.string(), "SHA-256 of the source image, as in flip_release."),
        described("source_key", pa.string(), "The key of the released sample the image was generated from."),
        described("generated_sha256", pa.string(), "SHA-256 of the generated image's bytes."),
        described("recaption_model", pa.string(), "The model that wrote the recaption."),
        described("image_model", pa.string(), "The model that generated the image."),
        described("image", pa.binary(), "The generated image's bytes."),
    ]
)
AIGC_PREFIX = "aigc-"


def build_aigc_release(
    samples: list[dict],
    sources: dict[str, dict],
    matcher: KeywordMatcher,
    classifier: NsfwClassifier,
    policy: ReleasePolicy,
    max_pixels: int,
) -> tuple[pa.Table, dict[str, int]]:
    """samples: aigc_samples rows with status ok; sources: flip_release rows by key. A sample is
    released when its source is (a removed sample's likeness is not released either) and the
    generated image passes the blocklist and the NSFW action. Returns the table and the count
    of samples left out per reason."""
    left_out: dict[str, int] = {}
    kept, images = [], []
    for s in samples:
        source = sources.get(s["source_key"])
        reason = None
        if source is None:
            reason = "source_not_released"
        elif policy.blocklist.reason(None, s["image_sha256"]):
            reason = BLOCKLISTED
        else:
            try:
                images.append(decode_rgb(s["image"], max_pixels).rgb)
                kept.append((s, source))
            except ImageRejected:
                reason = IMAGE_UNREADABLE
        if reason:
            left_out[reason] = left_out.get(reason, 0) + 1
    rows = []
    for (s, source), score in zip(kept, classifier.scores(images)):
        label = policy.thresholds.label(score)
        if policy.nsfw_action == "drop" and label == NSFW:
            left_out[NSFW_REASON] = left_out.get(NSFW_REASON, 0) + 1
            continue
        rows.append({
            "key": AIGC_PREFIX + s["source_key"], "shard": source["shard"], "URL": None, "TEXT": s["caption"],
            "original_caption": source["original_caption"], "KEYWORDS": matcher.find(s["caption"]),
            "HEIGHT": s["image_height"], "WIDTH": s["image_width"], "NSFW": label, "nsfw_score": float(score),
            "laion_nsfw": source["laion_nsfw"], "sha256": source["sha256"], "source_key": s["source_key"],
            "generated_sha256": s["image_sha256"], "recaption_model": s["vision_model"],
            "image_model": s["image_model"], "image": s["image"],
        })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=AIGC_RELEASE_SCHEMA), left_out


def schema_differences(path: Path, expected: pa.Schema) -> list[str]:
    """How the written file's schema differs from `expected` (empty when it is the same)."""
    actual = pq.read_schema(path)
    if actual.names != expected.names:
        return [f"columns {actual.names} instead of {expected.names}"]
    return [
        f"{name}: {actual.field(name).type} instead of {expected.field(name).type}"
        for name in expected.names
        if not actual.field(name).type.equals(expected.field(name).type)
    ]
