"""Sensors: register new shards as partitions and run the shard pipeline on them."""

from dagster import AssetKey, AssetPartitionStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from flip_assets.core.io.shards import list_shards
from flip_assets.defs.asset_keys import RAW_SHARDS
from flip_assets.defs.curation.jobs import shard_pipeline_job
from flip_assets.defs.shards import shard_partitions
from flip_assets.defs.shards import ShardSource


@sensor(job=shard_pipeline_job, minimum_interval_seconds=60)
def new_shards_sensor(context: SensorEvaluationContext, shard_source: ShardSource) -> SensorResult:
    """Adds a partition for every NNNNN.tar that appeared in FLIP_SOURCE, and requests a run for
    every shard whose raw_shards partition was never materialized.

    What to run comes from what has run, not from what is registered: a tick that registered a
    shard and then failed to launch its run is made good by the next tick. The run key is one
    per shard, and the daemon launches a run key once, so a shard is never run twice by the sensor.
    """
    # A vanished source folder fails the tick naming FLIP_SOURCE (shown on the sensor's page);
    # the daemon carries on and registered partitions and outputs stay as they are.
    shards = list_shards(shard_source.path)
    known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
    new = [s for s in shards if s not in known]
    if orphans := sorted(known - set(shards)):
        # Added by hand in the UI, or their file was deleted: their outputs are kept, and a run
        # of one fails naming the missing file.
        context.log.warning(f"partitions with no shard file in {shard_source.path}: {', '.join(orphans)}")
    # None until raw_shards has any materialization at all.
    status = context.instance.get_status_by_partition(AssetKey(RAW_SHARDS), shards, shard_partitions) or {}
    not_run = [s for s in shards if status.get(s) != AssetPartitionStatus.MATERIALIZED]
    return SensorResult(
        run_requests=[RunRequest(run_key=f"shard-{s}", partition_key=s) for s in not_run],
        dynamic_partitions_requests=[shard_partitions.build_add_request(new)] if new else [],
    )
