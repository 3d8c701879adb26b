"""The shards registered as partitions on the instance in $DAGSTER_HOME: list, add, remove.

    python -m flip_assets.tools.shards list                  # each shard and what is materialized
    python -m flip_assets.tools.shards add                   # every NNNNN.tar in FLIP_SOURCE
    python -m flip_assets.tools.shards add 00012 00013       # only these (their tar must be there)
    python -m flip_assets.tools.shards remove 00012          # a partition added by mistake
    python -m flip_assets.tools.shards remove 00012 --force  # even with materializations

Run it where `dagster` runs (the checkout, DAGSTER_HOME set): dagster.yaml's paths are relative.
`remove` refuses a shard with materializations unless --force: removing the partition keeps
them in the event log and their files in FLIP_HOME, which stages reading every shard's file
(flip_release's deduplication, aigc_samples) still read. A shard whose tar is still in FLIP_SOURCE comes back
with the next tick of new_shards_sensor or `add`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dagster import DagsterInstance

from flip_assets.core.io.shards import list_shards, registered_shards_text
from flip_assets.defs.shards import shard_partitions
from flip_assets.tools.run_pipeline import register_shards


def shard_source() -> Path:
    """FLIP_SOURCE, or its default, as the definitions resolve it (imports the resources: slow)."""
    from flip_assets.defs.resources import build_resources

    return build_resources()["shard_source"].process_config_and_initialize().path


def registered(instance: DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(shard_partitions.name))


def materialized_assets(instance: DagsterInstance) -> dict[str, list[str]]:
    """shard -> the assets with a materialization of that partition, from the event log."""
    by_shard: dict[str, list[str]] = {}
    for key in sorted(instance.get_asset_keys(), key=lambda k: k.to_user_string()):
        for shard in instance.get_materialized_partitions(key):
            by_shard.setdefault(shard, []).append(key.to_user_string())
    return by_shard


def list_command(instance: DagsterInstance) -> int:
    shards, done = registered(instance), materialized_assets(instance)
    print(registered_shards_text(shards))
    for shard in shards:
        print(f"{shard}  {', '.join(done.get(shard, [])) or 'nothing materialized'}")
    return 0


def add_command(instance: DagsterInstance, shards: list[str]) -> int:
    source, before = shard_source(), set(registered(instance))
    if not shards:
        register_shards(instance, source)  # what the sensor and `run_pipeline --register-only` do
    elif missing := [s for s in shards if s not in list_shards(source)]:
        print(f"not added: no {', '.join(f'{s}.tar' for s in missing)} in {source} (FLIP_SOURCE)", file=sys.stderr)
        return 1
    else:
        instance.add_dynamic_partitions(shard_partitions.name, [s for s in shards if s not in before])
    new = sorted(set(registered(instance)) - before)
    print(f"added: {', '.join(new) or 'none (all registered already)'}; {registered_shards_text(registered(instance))}")
    return 0


def remove_command(instance: DagsterInstance, shard: str, force: bool) -> int:
    if shard not in registered(instance):
        print(f"not removed: no shard {shard!r} ({registered_shards_text(registered(instance))})", file=sys.stderr)
        return 1
    assets = materialized_assets(instance).get(shard, [])
    if assets and not force:
        print(
            f"not removed: shard {shard} has materializations of {', '.join(assets)}. --force removes the "
            "partition and leaves them: their history in the event log and their files in FLIP_HOME, which "
            "stages reading every shard's file (flip_release's deduplication, aigc_samples) still read.",
            file=sys.stderr,
        )
        return 1
    instance.delete_dynamic_partition(shard_partitions.name, shard)
    print(f"removed shard {shard}; {registered_shards_text(registered(instance))}")
    if assets:
        print(
            f"left as they were: the materializations of {', '.join(assets)} in the event log, and their files "
            f"in FLIP_HOME (<asset>/{shard}.parquet), which stages reading every shard's file still read: "
            "delete those files to leave the shard out of them."
        )
    source = shard_source()
    if shard in list_shards(source):
        print(f"{source}/{shard}.tar is still in FLIP_SOURCE: new_shards_sensor (or `add`) registers it again; move it out first.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the registered shards and what is materialized of each")
    add = commands.add_parser("add", help="register shards whose tar is in FLIP_SOURCE (all of them by default)")
    add.add_argument("shards", nargs="*")
    remove = commands.add_parser("remove", help="remove a shard's partition")
    remove.add_argument("shard")
    remove.add_argument("--force", action="store_true", help="even when it has materializations (they are kept)")
    args = parser.parse_args(argv)

    with DagsterInstance.get() as instance:
        if args.command == "list":
            return list_command(instance)
        if args.command == "add":
            return add_command(instance, args.shards)
        return remove_command(instance, args.shard, args.force)


if __name__ == "__main__":
    sys.exit(main())
