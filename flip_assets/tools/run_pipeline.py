"""Materialize the whole pipeline on every shard from the command line.

    python -m flip_assets.tools.run_pipeline                 # every asset, every shard in FLIP_SOURCE (make pipeline)
    python -m flip_assets.tools.run_pipeline --register-only # only add the shards as partitions

Shards are registered as partitions of the instance (DAGSTER_HOME), so the runs, their
metadata and checks show in the UI afterwards. Assets run in dependency order: a shard-
partitioned asset once per shard, an unpartitioned one once, after all shards upstream of it.
A shard that fails does not stop the others; the command exits non-zero at the end, after a
summary: runs and asset checks (passed, failed, warned), the curation funnel per shard counted
from the published files, where the release, the dataset card and the model are, and how to
open the UI on this instance.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, Definitions

from flip_assets.core.analytics.pipeline_summary import CheckTally, funnel, funnel_table
from flip_assets.core.io.shards import list_shards
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


def run(instance: DagsterInstance, defs: Definitions, shards: list[str], checks: CheckTally, log=print) -> tuple[int, list[str]]:
    """Materialize every asset; returns how many runs there were and a description of each
    failed one. `checks` tallies the asset check evaluations of every run."""
    job = defs.resolve_implicit_global_asset_job_def()
    failures, runs = [], 0
    for partitioned, keys in asset_waves(defs):
        names = ", ".join(k.to_user_string() for k in keys)
        for shard in shards if partitioned else [None]:
            log(f"materializing {names}" + (f" for shard {shard}" if shard else ""))
            result = job.execute_in_process(
                instance=instance, asset_selection=keys, partition_key=shard, raise_on_error=False
            )
            runs += 1
            for evaluation in result.get_asset_check_evaluations():
                name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
                checks.add(name, evaluation.passed, evaluation.severity == AssetCheckSeverity.WARN)
            if not result.success:
                failures.append(f"{names} ({shard or 'unpartitioned'}): run {result.run_id}")
        if failures:
            break  # downstream stages would only fail on missing inputs
    return runs, failures


def summary(defs: Definitions, shards: list[str], runs: int, failures: list[str], checks: CheckTally) -> str:
    """What a person reads first when the command ends."""
    # Resolves the EnvVars; a context manager, since FlipStorage tears down (its partition locks).
    with defs.resources["flip_storage"].process_config_and_initialize_cm() as flip_storage:
        rows = funnel(flip_storage.path, shards)
        home = flip_storage.objects.url if flip_storage.objects is not None else flip_storage.home
    released = rows[-1]["released"]
    return "\n".join([
        "",
        "== Summary ==",
        f"runs: {runs - len(failures)} succeeded, {len(failures)} failed",
        f"asset checks: {checks.line()}",
        "funnel (samples per stage, from the published files; - : no file, its run failed):",
        funnel_table(rows),
        f"release: {home}/flip_release/<shard>.parquet ({released} pairs in {len(shards)} shards), "
        f"exclusions with reasons in {home}/release_exclusions/",
        f"dataset card: {home}/dataset_card/README.md",
        f"model: {home}/flip_checkpoint/model",
        f"UI on this instance: DAGSTER_HOME={Path(os.environ['DAGSTER_HOME']).resolve()} make ui, then open http://127.0.0.1:3000",
    ])  # fmt: skip


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
    checks = CheckTally()
    runs, failures = run(instance, defs, shards, checks)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print(summary(defs, shards, runs, failures, checks))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
