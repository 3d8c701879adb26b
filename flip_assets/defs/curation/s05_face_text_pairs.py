"""Stage 5: face_text_pairs, the textual filter: a face-detected sample is kept when the
caption classifier scores its caption above the threshold (paper 3.1)."""


import pyarrow.compute as pc
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import expectations, storage
from flip_assets.core.curation.caption_classifier import load_classifier
from flip_assets.core.curation.face_text_pairs import DROP_REASONS, FACE_TEXT_PAIRS_SCHEMA, filter_face_pairs
from flip_assets.core.curation.keywords import KeywordMatcher, used_keywords
from flip_assets.defs.asset_keys import CAPTION_CLASSIFIER, FACE_DETECTIONS, FACE_KEYWORDS, FACE_TEXT_PAIRS, RAW_SHARDS
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check, expectations_pass
from flip_assets.defs.shards import SHARD_TAG, SINGLE_RUN_BACKFILL, per_shard, shard_partitions
from flip_assets.defs.curation.resources import CaptionFilterResource
from flip_assets.defs.storage import FlipStorage

EXAMPLE_COLUMNS = ["key", "caption", "text_score", "keywords", "drop_reason"]


def contract_suite() -> list:
    """The contract denoised_captions relies on: columns in order, keys and verdicts always set."""
    import great_expectations as gx  # here, not at the top: loading the definitions stays cheap

    return [
        gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=FACE_TEXT_PAIRS_SCHEMA.names),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="key"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="kept"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="drop_reason", value_set=list(DROP_REASONS)),
    ]


# Judged from face_text_pairs_checks.sql and contract_suite()'s result.
CHECKS = AssetChecks(
    FACE_TEXT_PAIRS,
    Check(
        "every_face_sample_accounted_for",
        "Every sample face_detections kept has a row, and no other sample: kept with a score, or dropped with a reason.",
        blocking=True, zero=("missing_from_output", "not_face_samples", "unexplained"), report=("face_samples", "pairs"),
    ),  # fmt: skip
    Check(
        "scores_in_range", "Every caption score lies in [0, 1], and every kept pair scores above the threshold.",
        blocking=True, zero=("scores_out_of_range", "kept_at_or_below_threshold"),
    ),  # fmt: skip
    Check("unique_keys", "No key twice.", blocking=True, zero=("duplicate_keys",)),
    expectations_pass(
        "contract",
        "What denoised_captions relies on: the columns in order, key and kept always set, drop_reason (when set) a known one.",
    ),
)


@asset(
    partitions_def=shard_partitions,
    tags=SHARD_TAG,
    deps=[RAW_SHARDS, FACE_DETECTIONS, FACE_KEYWORDS, CAPTION_CLASSIFIER],
    kinds={"pytorch", "parquet"},
    check_specs=CHECKS.specs,
    code_version="1",
    pool="classifier",
    backfill_policy=SINGLE_RUN_BACKFILL,
    automation_condition=REFRESH_ON_CHANGE,
)
@per_shard
def face_text_pairs(
    context: AssetExecutionContext, flip_storage: FlipStorage, caption_filter: CaptionFilterResource
) -> MaterializeResult:
    """Every sample face_detections kept, with its caption's classifier score and face keywords;
    kept when the score is above the threshold (the one caption_classifier chose on the reviewed
    dev captions, or FLIP_TEXT_THRESHOLD when set), else dropped with a reason."""
    shard = context.partition_key
    # Loaded before any work: a missing or broken model fails the run naming its folder.
    model_dir = flip_storage.caption_classifier_dir()
    model, tokenizer = load_classifier(model_dir, caption_filter.device)
    threshold = caption_filter.threshold(model_dir)
    raw_path, detections_path = flip_storage.path(RAW_SHARDS, shard), flip_storage.path(FACE_DETECTIONS, shard)
    for upstream in (raw_path, detections_path):
        storage.require_file(upstream)
    rows = storage.query(
        storage.sql_file("face_text_pairs_input.sql"), raw_path=str(raw_path), detections_path=str(detections_path)
    )
    table = filter_face_pairs(
        rows,
        KeywordMatcher(used_keywords(flip_storage.path(FACE_KEYWORDS))),
        model,
        tokenizer,
        keep_threshold=threshold,
        max_chars=caption_filter.max_caption_chars,
        batch_size=caption_filter.score_batch_size,
        max_length=caption_filter.max_length,
    )
    path = flip_storage.write(FACE_TEXT_PAIRS, shard, table)
    facts = storage.query(
        storage.sql_file("face_text_pairs_checks.sql"),
        path=str(path), detections_path=str(detections_path), threshold=threshold,
    )[0]  # fmt: skip
    outcomes = storage.query(storage.sql_file("face_detections_reasons.sql"), path=str(path))
    suite = expectations.validate(storage.read_table(path).to_pandas(), FACE_TEXT_PAIRS, contract_suite())
    kept = table.filter(table["kept"]).select(EXAMPLE_COLUMNS).slice(0, 5)
    dropped = table.filter(pc.invert(table["kept"])).select(EXAMPLE_COLUMNS).slice(0, 5)
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "face_samples": facts["face_samples"],
            "kept": facts["kept"],
            "kept_share": facts["kept"] / facts["face_samples"] if facts["face_samples"] else 0.0,
            "keep_threshold": threshold,
            "threshold_source": "chosen by caption_classifier" if caption_filter.keep_threshold is None else "FLIP_TEXT_THRESHOLD",
            "outcomes": MetadataValue.json({o["outcome"]: o["samples"] for o in outcomes}),
            "kept_examples": MetadataValue.md(kept.to_pandas().to_markdown(index=False)),
            "dropped_examples": MetadataValue.md(dropped.to_pandas().to_markdown(index=False)),
        },
        check_results=CHECKS.results({**facts, "suite": suite}),
    ))
