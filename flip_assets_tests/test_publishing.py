"""A stage's file is published only when its blocking checks pass: a later, separate run never
reads an input whose latest materialization failed one (not even the older file before it)."""


import pytest
from conftest import RAW_SHARDS, make_resources, run_assets
from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, asset

from flip_assets.core.io import storage
from flip_assets.core.io.shards import read_shard
from flip_assets.defs.shards import shard_partitions
from flip_assets.defs.curation.s02_face_detections import face_detections
from flip_assets.defs.storage import FlipStorage

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # detects faces on a whole shard, across separate runs


class Verdict(Config):
    schema_ok: bool = True


# The real shard rows under the real asset key, with the blocking check's verdict chosen by the
# test: the real checks cannot be made to fail by any input any more, which is the point of #7.
@asset(
    name="raw_shards",
    partitions_def=shard_partitions,
    check_specs=[AssetCheckSpec("schema_and_values", asset="raw_shards", blocking=True),
                 AssetCheckSpec("advisory", asset="raw_shards", blocking=False)],
)  # fmt: skip
def raw_shards_with_verdict(context: AssetExecutionContext, config: Verdict, flip_storage: FlipStorage):
    table, _ = read_shard(RAW_SHARDS, context.partition_key)
    flip_storage.write("raw_shards", context.partition_key, table)
    return flip_storage.publish(
        context,
        MaterializeResult(
            check_results=[
                AssetCheckResult(check_name="schema_and_values", passed=config.schema_ok),
                AssetCheckResult(check_name="advisory", passed=False),  # non-blocking: never withholds
            ]
        ),
    )


def test_failed_blocking_check_withholds_the_file_from_later_runs(tmp_path, instance):
    from dagster import RunConfig, materialize

    home = tmp_path / "home"
    path = storage.partition_path(home, "raw_shards", "00000")
    resources = make_resources(home)

    def materialize_raw(schema_ok: bool):
        instance.add_dynamic_partitions(shard_partitions.name, ["00000"])
        return materialize(
            [raw_shards_with_verdict], resources=resources, instance=instance, partition_key="00000",
            run_config=RunConfig(ops={"raw_shards": Verdict(schema_ok=schema_ok)}), raise_on_error=False,
        )  # fmt: skip

    good = materialize_raw(schema_ok=True)
    assert good.success and path.is_file()
    [event] = good.get_asset_materialization_events()
    assert event.materialization.metadata["published"].value is True

    bad = materialize_raw(schema_ok=False)
    [event] = bad.get_asset_materialization_events()
    assert event.materialization.metadata["published"].value is False
    # The new file is set aside and the older one withdrawn: neither may feed a later run.
    assert not path.exists() and storage.rejected_path(path).is_file()
    assert not any(p.name.endswith(".parquet") for p in path.parent.glob("*.parquet"))

    downstream = run_assets([face_detections], resources, instance, "00000")
    assert not downstream.success
    [failure] = [e for e in downstream.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "schema_and_values" in message and bad.run_id in message
    assert not storage.partition_path(home, "face_detections", "00000").exists()
    with pytest.raises(storage.InputRejected):
        storage.read_table(path)

    # Fixed and re-materialized: published again, and the stage downstream runs.
    assert materialize_raw(schema_ok=True).success and path.is_file()
    assert not storage.rejected_path(path).exists()
    assert run_assets([face_detections], resources, instance, "00000").success
