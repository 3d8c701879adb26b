"""Materialize the whole pipeline on every shard from the command line.

    python -m flip_assets.pipeline                 # every asset, every shard in FLIP_SOURCE
    python -m flip_assets.pipeline --register-only # only add the shards as partitions

Shards are registered as partitions of the instance (DAGSTER_HOME), so the runs, their
metadata and checks show in the UI afterwards. Assets run in dependency order: a shard-
partitioned asset once per shard, an unpartitioned one once, after all shards upstream of it.
A shard that fails does not stop the others; the command exits non-zero at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Definitions

from flip_assets.core.shards import list_shards
from flip_assets.defs.shards import shard_partitions
from flip_assets.run_launcher import fail_dead_runs


def register_shards(instance: DagsterInstance, source: Path) -> list[str]:
    """Add every shard of the source folder as a partition; returns all shard keys."""
    shards = list_shards(source)
    known = set(instance.get_dynamic_partitions(shard_partitions.name))
    new = [s for s in shards if s not in known]
    if new:
        instance.add_dynamic_partitions(shard_partitions.name, new)
    return shards


def asset_waves(defs: Definitions) -> list[tuple[bool, list[AssetKey]]]:
    """Assets in topological order, grouped into runs of (partitioned?, keys)."""
    graph = defs.resolve_asset_graph()
    waves: list[tuple[bool, list[AssetKey]]] = []
    for level in graph.toposorted_asset_keys_by_level:
        for key in sorted(level, key=lambda k: k.to_user_string()):
            if not graph.get(key).is_materializable:
                continue
            partitioned = graph.get(key).partitions_def is not None
            if waves and waves[-1][0] == partitioned:
                waves[-1][1].append(key)
            else:
                waves.append((partitioned, [key]))
    return waves


def run(instance: DagsterInstance, defs: Definitions, shards: list[str], log=print) -> list[str]:
    """Materialize every asset; returns a description of each failed run."""
    job = defs.resolve_implicit_global_asset_job_def()
    failures = []
    for partitioned, keys in asset_waves(defs):
        names = ", ".join(k.to_user_string() for k in keys)
        for shard in shards if partitioned else [None]:
            log(f"materializing {names}" + (f" for shard {shard}" if shard else ""))
            result = job.execute_in_process(
                instance=instance, asset_selection=keys, partition_key=shard, raise_on_error=False
            )
            if not result.success:
                failures.append(f"{names} ({shard or 'unpartitioned'}): run {result.run_id}")
        if failures:
            break  # downstream stages would only fail on missing inputs
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--register-only", action="store_true", help="only add the shards as partitions")
    args = parser.parse_args(argv)

    from flip_assets.definitions import defs

    instance = DagsterInstance.get()
    for run_id in fail_dead_runs(instance):
        print(f"run {run_id} had died (killed?): marked failed, its pool slots given back")
    shard_source = defs.resources["shard_source"].process_config_and_initialize()  # resolves EnvVars
    shards = register_shards(instance, shard_source.path)
    print(f"shards: {', '.join(shards) or 'none'}")
    if args.register_only:
        return 0
    failures = run(instance, defs, shards)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
