"""new_shards_sensor: registers new shards and requests a run for every shard not yet run."""

from __future__ import annotations

import pytest
from conftest import RAW_SHARDS, make_resources, run_assets
from dagster import build_sensor_context

from flip_assets.defs.curation.s01_raw_shards import raw_shards
from flip_assets.defs.curation.sensors import new_shards_sensor
from flip_assets.defs.shards import ShardSource


def tick(instance):
    context = build_sensor_context(instance=instance, resources={"shard_source": ShardSource(directory=str(RAW_SHARDS))})
    return new_shards_sensor(context)


def requested(result) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests]


SHARDS = sorted(p.stem for p in RAW_SHARDS.glob("*.tar"))


def test_a_shard_whose_run_never_started_is_requested_again_until_it_runs(instance, tmp_path):
    first = tick(instance)
    assert requested(first) == [(shard, f"shard-{shard}") for shard in SHARDS]
    [registration] = first.dynamic_partitions_requests
    assert registration.partition_keys == SHARDS
    # The daemon registers the partitions, then launching the runs fails: no run exists.
    instance.add_dynamic_partitions("shards", registration.partition_keys)
    again = tick(instance)
    # Same run keys: the daemon launches a key once, so a shard whose run started is not run twice.
    assert requested(again) == requested(first) and again.dynamic_partitions_requests == []
    assert run_assets([raw_shards], make_resources(tmp_path), instance, "00000").success
    assert requested(tick(instance)) == [(shard, f"shard-{shard}") for shard in SHARDS if shard != "00000"]


def test_a_vanished_source_folder_fails_the_tick_naming_it_and_keeps_the_partitions(instance, tmp_path):
    instance.add_dynamic_partitions("shards", ["00000"])
    context = build_sensor_context(instance=instance, resources={"shard_source": ShardSource(directory=str(tmp_path / "gone"))})
    with pytest.raises(FileNotFoundError, match=r"gone \(set FLIP_SOURCE\)"):
        new_shards_sensor(context)
    assert instance.get_dynamic_partitions("shards") == ["00000"]
