"""Stage 2: face_detections, the visual filter (RetinaFace, best face score > 0.9)."""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.curation.face_filter import detect_faces_in_shard
from flip_assets.defs.asset_keys import FACE_DETECTIONS, RAW_SHARDS
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check, Facts
from flip_assets.defs.shards import SHARD_TAG, SINGLE_RUN_BACKFILL, per_shard, shard_partitions
from flip_assets.defs.curation.resources import FaceDetectorResource
from flip_assets.defs.storage import FlipStorage


def _kept_plus_dropped(facts: Facts) -> int:
    return facts["kept"] + facts["dropped_with_reason"]


# Judged from face_detections_checks.sql.
CHECKS = AssetChecks(
    FACE_DETECTIONS,
    Check(
        "every_sample_accounted_for",
        "Every sample of raw_shards has a row here: kept, or dropped with a reason.",
        blocking=True, zero=("missing_from_output",),
        passed=lambda f: _kept_plus_dropped(f) == f["input_samples"],
        metadata=lambda f: {"input": f["input_samples"], "kept_plus_dropped": _kept_plus_dropped(f)},
    ),  # fmt: skip
    Check(
        "scores_in_range", "Every face score and every sample's best score lies in [0, 1].",
        blocking=True, zero=("faces_out_of_range", "best_scores_out_of_range"),
    ),  # fmt: skip
    Check(
        "boxes_inside_image", "Every face box lies inside its image, its corners in order.",
        blocking=True, zero=("boxes_outside_image",),
    ),  # fmt: skip
    Check("unique_keys", "No key twice.", blocking=True, zero=("duplicate_keys",)),
)


@asset(
    partitions_def=shard_partitions,
    tags=SHARD_TAG,
    deps=[RAW_SHARDS],
    kinds={"pytorch", "parquet"},
    check_specs=CHECKS.specs,
    code_version="1",
    pool="detector",
    backfill_policy=SINGLE_RUN_BACKFILL,
    automation_condition=REFRESH_ON_CHANGE,
)
@per_shard
def face_detections(
    context: AssetExecutionContext, flip_storage: FlipStorage, face_detector: FaceDetectorResource
) -> MaterializeResult:
    """Faces (box, 5 landmarks, score) of every raw sample; kept when the best face scores above
    the threshold, else dropped with a reason."""
    shard = context.partition_key
    raw_path = flip_storage.path(RAW_SHARDS, shard)
    raw_rows = storage.read_table(raw_path).to_pylist()
    detector = face_detector.get_detector()

    def progress(done: int, total: int) -> None:
        context.log.info(f"shard {shard}: {done}/{total} images through {detector.name}")

    table = detect_faces_in_shard(
        raw_rows,
        detector,
        keep_threshold=face_detector.keep_threshold,
        max_pixels=face_detector.max_pixels,
        max_side=face_detector.max_side,
        progress=progress,
    )
    path = flip_storage.write(FACE_DETECTIONS, shard, table)
    facts = storage.query(storage.sql_file("face_detections_checks.sql"), path=str(path), raw_path=str(raw_path))[0]
    outcomes = storage.query(storage.sql_file("face_detections_reasons.sql"), path=str(path))
    kept = table.filter(table["kept"]).select(["key", "face_count", "best_score", "largest_face_share"])
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "detector": detector.name,
            "keep_threshold": face_detector.keep_threshold,
            "input_samples": facts["input_samples"],
            "kept": facts["kept"],
            "kept_share": facts["kept"] / facts["input_samples"] if facts["input_samples"] else 0.0,
            "outcomes": MetadataValue.json({o["outcome"]: o["samples"] for o in outcomes}),
            "kept_preview": MetadataValue.md(kept.slice(0, 10).to_pandas().to_markdown(index=False)),
        },
        check_results=CHECKS.results(facts),
    ))
