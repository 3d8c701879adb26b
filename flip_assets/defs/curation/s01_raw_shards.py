"""Stage 1: raw_shards, one row per input sample of an img2dataset webdataset shard."""


import great_expectations as gx
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from flip_assets.core import expectations, storage
from flip_assets.core.shards import MAX_SIDE, RAW_SHARD_SCHEMA, read_shard
from flip_assets.defs.curation.partitions import SHARD_TAG, shard_partitions
from flip_assets.defs.curation.resources import ShardSource
from flip_assets.defs.resources import FlipStorage

RAW_SHARDS_SUITE = [
    gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=RAW_SHARD_SCHEMA.names),
    gx.expectations.ExpectColumnValuesToNotBeNull(column="key"),
    gx.expectations.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed_to_download", "invalid"]),
    gx.expectations.ExpectColumnValuesToBeBetween(column="width", min_value=1, max_value=MAX_SIDE),
    gx.expectations.ExpectColumnValuesToBeBetween(column="height", min_value=1, max_value=MAX_SIDE),
]


@asset(
    partitions_def=shard_partitions,
    tags=SHARD_TAG,
    group_name="visual_filtering",
    kinds={"parquet"},
    check_specs=[
        AssetCheckSpec("unique_keys", asset="raw_shards", blocking=True),
        AssetCheckSpec("schema_and_values", asset="raw_shards", blocking=True),
        AssetCheckSpec("matches_img2dataset_stats", asset="raw_shards"),
        AssetCheckSpec(
            "shard_files_intact", asset="raw_shards", description="the tar, .parquet and _stats.json are present and readable"
        ),
    ],
)
def raw_shards(context: AssetExecutionContext, flip_storage: FlipStorage, shard_source: ShardSource) -> MaterializeResult:
    """Every sample of the shard (successful or not) with its caption, metadata, status and the
    byte range of its image inside the tar."""
    shard = context.partition_key
    table, facts = read_shard(shard_source.path, shard)
    path = flip_storage.write("raw_shards", shard, table)
    summary = storage.query(storage.sql_file("raw_shards_summary.sql"), path=str(path))[0]
    errors = storage.query(storage.sql_file("raw_shards_errors.sql"), path=str(path))
    for problem in facts["problems"]:
        context.log.warning(f"shard {shard}: {problem}")

    suite = expectations.validate(table.to_pandas(), "raw_shards", RAW_SHARDS_SUITE)
    stats = facts["img2dataset_stats"] or {}
    checks = [
        # Copies of a key in the tar already have rows of their own (KEY.dupN, invalid): noticed as
        # a warning, which does not block later stages; a key twice in the table is an error.
        AssetCheckResult(
            check_name="unique_keys",
            passed=summary["duplicate_keys"] == 0 and summary["duplicate_copies"] == 0,
            severity=AssetCheckSeverity.ERROR if summary["duplicate_keys"] else AssetCheckSeverity.WARN,
            metadata={"duplicate_keys": summary["duplicate_keys"], "duplicate_copies": summary["duplicate_copies"]},
        ),
        AssetCheckResult(
            check_name="schema_and_values", passed=suite.success,
            metadata={"failures": MetadataValue.json(suite.failures)},
        ),
        AssetCheckResult(
            check_name="matches_img2dataset_stats",
            passed=stats.get("count") == summary["samples"] and stats.get("successes") == summary["ok"],
            severity=AssetCheckSeverity.WARN,
            metadata={
                "stats_count": stats.get("count"),
                "stats_successes": stats.get("successes"),
                "stats_problem": facts["stats_problem"] or "",
            },
        ),
        AssetCheckResult(
            check_name="shard_files_intact",
            passed=not facts["problems"],
            severity=AssetCheckSeverity.WARN,
            metadata={"problems": MetadataValue.json(facts["problems"])},
        ),
    ]
    preview = table.filter(pc.equal(table["status"], "ok")).select(["key", "caption", "width", "height", "url"]).slice(0, 5)
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "samples": summary["samples"],
            "ok": summary["ok"],
            "success_rate": summary["ok"] / summary["samples"] if summary["samples"] else 0.0,
            "failed_to_download": summary["failed_to_download"],
            "invalid": summary["invalid"],
            "repaired": summary["repaired"],
            "error_breakdown": MetadataValue.json({e["reason"]: e["samples"] for e in errors}),
            "tar_error": facts["tar_error"] or "",
            "shard_problems": MetadataValue.json(facts["problems"]),
            "preview": MetadataValue.md(preview.to_pandas().to_markdown(index=False)),
        },
        check_results=checks,
    ))
