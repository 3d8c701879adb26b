"""Stage 1: raw_shards, one row per input sample of an img2dataset webdataset shard."""


import pyarrow.compute as pc
from dagster import AssetCheckSeverity, AssetExecutionContext, DataVersion, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import expectations, storage
from flip_assets.core.io.shards import MAX_SIDE, RAW_SHARD_SCHEMA, read_shard, shard_version
from flip_assets.defs.asset_keys import RAW_SHARDS
from flip_assets.defs.automation import REFRESH_ON_CODE_CHANGE
from flip_assets.defs.checks import AssetChecks, Check, Facts, expectations_pass
from flip_assets.defs.shards import SHARD_TAG, SINGLE_RUN_BACKFILL, per_shard, shard_partitions
from flip_assets.defs.shards import ShardSource
from flip_assets.defs.storage import FlipStorage


def raw_shards_suite() -> list:
    import great_expectations as gx  # here, not at the top: loading the definitions stays cheap

    return [
        gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=RAW_SHARD_SCHEMA.names),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="key"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed_to_download", "invalid"]),
        gx.expectations.ExpectColumnValuesToBeBetween(column="width", min_value=1, max_value=MAX_SIDE),
        gx.expectations.ExpectColumnValuesToBeBetween(column="height", min_value=1, max_value=MAX_SIDE),
    ]


def _img2dataset_counts(facts: Facts) -> dict:
    stats = facts["img2dataset_stats"] or {}
    return {"stats_count": stats.get("count"), "stats_successes": stats.get("successes")}


# Judged from raw_shards_summary.sql, read_shard's facts and the suite's result.
CHECKS = AssetChecks(
    RAW_SHARDS,
    # Copies of a key in the tar already have rows of their own (KEY.dupN, invalid): noticed as
    # a warning, which does not block later stages; a key twice in the table is an error.
    Check(
        "unique_keys",
        "No key twice in the table (error). Further copies of a key in the tar, each kept as an "
        "invalid row KEY.dupN, fail it as a warning only.",
        blocking=True, zero=("duplicate_keys", "duplicate_copies"),
        severity=lambda f: AssetCheckSeverity.ERROR if f["duplicate_keys"] else AssetCheckSeverity.WARN,
    ),  # fmt: skip
    expectations_pass(
        "schema_and_values",
        "The columns of raw_shards in order; every key set; status ok, failed_to_download or invalid; "
        f"width and height from 1 to {MAX_SIDE} pixels.",
    ),
    Check(
        "matches_img2dataset_stats",
        "As many samples and successes as img2dataset's _stats.json counted (a warning).",
        passed=lambda f: _img2dataset_counts(f) == {"stats_count": f["samples"], "stats_successes": f["ok"]},
        metadata=lambda f: {**_img2dataset_counts(f), "stats_problem": f["stats_problem"] or ""},
        severity=AssetCheckSeverity.WARN,
    ),
    Check(
        "shard_files_intact",
        "The shard's tar, .parquet and _stats.json are present and readable (a warning: what was readable is kept).",
        passed=lambda f: not f["problems"], metadata=lambda f: {"problems": MetadataValue.json(f["problems"])},
        severity=AssetCheckSeverity.WARN,
    ),  # fmt: skip
)


@asset(
    partitions_def=shard_partitions,
    tags=SHARD_TAG,
    kinds={"parquet"},
    check_specs=CHECKS.specs,
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    automation_condition=REFRESH_ON_CODE_CHANGE,
)
@per_shard
def raw_shards(context: AssetExecutionContext, flip_storage: FlipStorage, shard_source: ShardSource) -> MaterializeResult:
    """Every sample of the shard (successful or not) with its caption, metadata, status and the
    byte range of its image inside the tar. Its data version is the shard's bytes (with the code
    version): re-running an unchanged shard is no change for the stages below."""
    shard = context.partition_key
    # Hashed before reading: bytes replaced meanwhile give a new version at the next run.
    version = shard_version(shard_source.path, shard, context.assets_def.code_versions_by_key[context.asset_key])
    table, facts = read_shard(shard_source.path, shard)
    path = flip_storage.write(RAW_SHARDS, shard, table)
    summary = storage.query(storage.sql_file("raw_shards_summary.sql"), path=str(path))[0]
    errors = storage.query(storage.sql_file("raw_shards_errors.sql"), path=str(path))
    for problem in facts["problems"]:
        context.log.warning(f"shard {shard}: {problem}")
    suite = expectations.validate(table.to_pandas(), RAW_SHARDS, raw_shards_suite())
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
        check_results=CHECKS.results({**summary, **facts, "suite": suite}),
        data_version=DataVersion(version),
    ))
