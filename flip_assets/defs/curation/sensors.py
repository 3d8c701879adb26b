"""Sensors: register new shards as partitions and run the shard pipeline on them."""

from dagster import RunRequest, SensorEvaluationContext, SensorResult, sensor

from flip_assets.core.shards import list_shards
from flip_assets.defs.curation.jobs import shard_pipeline_job
from flip_assets.defs.curation.partitions import shard_partitions
from flip_assets.defs.curation.resources import ShardSource


@sensor(job=shard_pipeline_job, minimum_interval_seconds=60)
def new_shards_sensor(context: SensorEvaluationContext, shard_source: ShardSource) -> SensorResult:
    """Adds a partition for every NNNNN.tar that appeared in FLIP_SOURCE and requests its run."""
    known = set(context.instance.get_dynamic_partitions(shard_partitions.name))
    new = [s for s in list_shards(shard_source.path) if s not in known]
    return SensorResult(
        run_requests=[RunRequest(run_key=f"shard-{s}", partition_key=s) for s in new],
        dynamic_partitions_requests=[shard_partitions.build_add_request(new)] if new else [],
    )
