"""Jobs: the per-shard part of the pipeline, run once per shard partition."""

from dagster import define_asset_job

from flip_assets.defs.shards import shard_assets, shard_partitions
from flip_assets.defs.executors import run_executor

# All steps in the run's one process: a step process of its own re-imports the package (Dagster,
# torch; ~17 s under load), more than most of these steps take. On Kubernetes, a pod per step.
shard_pipeline_job = define_asset_job(
    "shard_pipeline", selection=shard_assets, partitions_def=shard_partitions, executor_def=run_executor()
)
