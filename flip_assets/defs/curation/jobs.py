"""Jobs: the per-shard part of the pipeline, run once per shard partition."""

from dagster import define_asset_job

from flip_assets.defs.curation.partitions import shard_assets, shard_partitions

shard_pipeline_job = define_asset_job("shard_pipeline", selection=shard_assets, partitions_def=shard_partitions)
