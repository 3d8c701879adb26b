"""The one partitioning of the pipeline: a partition per img2dataset shard ('00000', ...).

Keys are added by `new_shards_sensor` (sensors.py) or `python -m flip_assets.pipeline --register-only`.
Every shard-partitioned asset carries SHARD_TAG, so jobs can select them all.
"""

from dagster import AssetSelection, DynamicPartitionsDefinition

shard_partitions = DynamicPartitionsDefinition(name="shards")
SHARD_TAG = {"partition": "shard"}
shard_assets = AssetSelection.tag("partition", "shard")
