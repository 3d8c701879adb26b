"""The one partitioning of the pipeline: a partition per img2dataset shard ('00000', ...), and
the folder the shards come from (ShardSource, FLIP_SOURCE). Shared by every domain.

Keys are added by `new_shards_sensor` (curation/sensors.py), `python -m flip_assets.tools.shards
add` or `python -m flip_assets.tools.run_pipeline --register-only`; `python -m
flip_assets.tools.shards remove` removes one. The assets tagged SHARD_TAG (the curation
stages' shard assets, release_candidates and release_index) form the shard_pipeline job (curation/jobs.py), the
run a new shard gets.
The curation stages' shard assets have their bodies wrapped in `per_shard`, and every curation
asset has SINGLE_RUN_BACKFILL, so one run can materialize a range of shards; the other
shard-partitioned assets (release_candidates, release_index, flip_release, release_exclusions,
released_face_demographics) run one shard per run.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
from dagster import AssetCheckResult, AssetDep, AssetMaterialization, AssetRecordsFilter, AssetSelection, BackfillPolicy, BetaWarning, DataVersion
from dagster import DynamicPartitionsDefinition, Failure, MaterializeResult, MetadataValue, SpecificPartitionsPartitionMapping
from dagster._core.definitions.data_version import DATA_VERSION_IS_USER_PROVIDED_TAG, DATA_VERSION_TAG
from dagster._core.definitions.partitions.context import PartitionLoadingContext, partition_loading_context

from flip_assets.core.io.shards import unknown_shard_message
from flip_assets.defs.checks import combine_check_results
from flip_assets.defs.settings import EnvSettings


class UnknownShard(click.ClickException):
    """A shard named on the command line or in a run request that is not a partition.

    A click error so that the command line shows only its message: Dagster's CLI (`dagster asset
    materialize`, `dg launch`) catches only DagsterUnknownPartitionError, to replace it by one
    that names no shard under a 20-frame traceback; click prints this one as `Error: ...` and
    exits 1. Elsewhere (a sensor's tick, an in-process run) it is an ordinary error."""


class ShardPartitionsDefinition(DynamicPartitionsDefinition):
    """Dagster's dynamic partitions, with an error for an unknown shard that names the
    registered ones and how to register one (the first thing Dagster calls on a key)."""

    def validate_partition_key(self, partition_key: str, context: PartitionLoadingContext) -> None:
        with partition_loading_context(new_ctx=context) as ctx:
            if self.has_partition_key(partition_key):
                return
            registered = ctx.dynamic_partitions_store.get_dynamic_partitions(self.name)
        raise UnknownShard(unknown_shard_message(partition_key, list(registered)))


shard_partitions = ShardPartitionsDefinition(name="shards")

# The learned stages (face_keywords' Word2Vec, the caption classifier's data set and its
# face-description test) train once on a fixed, documented sample of shards, not on every shard:
# FLIP_LEARNING_SHARDS, comma-separated shard names (read when the definitions load), by default
# the first ten, 00000 to 00009 (the sample data). Their dependency on raw_shards and
# face_detections maps to these partitions alone, so a shard outside the sample never makes them
# Unsynced nor requests them; a sample shard that changes or first appears does.
LEARNING_SHARDS = tuple(
    s.strip() for s in os.environ.get("FLIP_LEARNING_SHARDS", ",".join(f"{n:05d}" for n in range(10))).split(",") if s.strip()
)
LEARNING_SAMPLE = SpecificPartitionsPartitionMapping(list(LEARNING_SHARDS))


def learning_sample_deps(*keys: str) -> list[AssetDep]:
    """Dependencies on shard assets that see only the learning sample's partitions."""
    return [AssetDep(key, partition_mapping=LEARNING_SAMPLE) for key in keys]
SHARD_TAG = {"partition": "shard"}
shard_assets = AssetSelection.tag("partition", "shard")

# Every curation asset's backfill policy. One run may hold many shards: `dagster asset materialize
# --partition-range A...B` accepts only assets with this policy (the unpartitioned ones too, so
# `--select 'group:curation'` with a range runs every curation stage in one run), and a run pays
# the package's import (Dagster, torch: ~17 s on a busy machine) once instead of once per shard.
# The sensor and backfills of the shard_pipeline job still run one shard per run.
SINGLE_RUN_BACKFILL = BackfillPolicy.single_run()
# Dagster 1.13 calls `backfill_policy` beta and warns once per asset that sets it, on every load
# of the definitions: 22 lines before each CLI error or run log. The policy is chosen (above);
# other beta warnings still show. (They used to be hidden by a filter that a heavy library,
# imported at module level until issue 23, installed as a side effect.)
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset` is currently in beta", category=BetaWarning)

class _OneShard:
    """The asset's context seen from one shard of a range run: `partition_key` is that shard."""

    has_partition_key = True

    def __init__(self, context, shard: str):
        self._context, self.partition_key = context, shard

    def __getattr__(self, name):
        return getattr(self._context, name)


def per_shard(compute):
    """Run a shard asset's body once per shard of the run's partitions.

    A run of one shard is the body's own call. In a range run every shard runs even when another
    failed: each one's metadata and data version go to its own partition (a shard has the same
    version whether it ran alone or in a range) and the check results are combined (a check
    passes when it passed on every shard; its metadata names the failing shards). When shards
    failed, the others are recorded as materialized (with their own data version) and the run
    fails naming each failed shard and its error, so a bad shard never holds the rest back.
    """

    @functools.wraps(compute)  # Dagster reads the resources from the wrapped signature
    def run_shards(context, **resources) -> Iterator[MaterializeResult | AssetMaterialization | AssetCheckResult]:
        # A generator: what it yields before failing is still recorded.
        shards = context.partition_keys
        if len(shards) == 1:
            yield compute(context, **resources)
            return
        results, failures = {}, {}
        for shard in shards:
            try:
                results[shard] = compute(_OneShard(context, shard), **resources)
            except Exception as error:  # noqa: BLE001 - reported per shard below, the run still fails
                context.log.error(f"shard {shard} failed: {type(error).__name__}: {error}")
                failures[shard] = f"{type(error).__name__}: {error}"
        if failures:
            for shard, result in results.items():
                yield AssetMaterialization(
                    context.asset_key, partition=shard, metadata=result.metadata,
                    tags={DATA_VERSION_TAG: result.data_version.value} if result.data_version else None,
                )  # fmt: skip
            reasons = "".join(f"\n{shard}: {reason}" for shard, reason in failures.items())
            raise Failure(
                f"{len(failures)} of {len(shards)} shards failed ({', '.join(failures)}); the others are materialized{reasons}",
                metadata={"failed_shards": MetadataValue.json(failures)},
            )
        for shard, result in results.items():
            context.add_asset_metadata(dict(result.metadata or {}), partition_key=shard)
        yield MaterializeResult()
        yield from _own_data_versions(context, {s: r.data_version for s, r in results.items() if r.data_version})
        # After those, so the checks judge the materializations that stand.
        yield from combine_check_results({s: r.check_results for s, r in results.items()})

    return run_shards


def _own_data_versions(context, versions: dict[str, DataVersion]) -> Iterator[AssetMaterialization]:
    """Each shard's materialization of this range run again, now with its own data version.

    Dagster gives every partition of a range run the output's one data version (it has no
    per-partition one: dagster-io/dagster#18649, #34013), so a shard re-run with the same bytes
    would look changed and everything below it Unsynced, and re-run by automation. Its latest
    materialization (what staleness and automation read) is this copy of the one Dagster just
    recorded, the same provenance and metadata but the shard's own version. (The UI lists both:
    a range run shows each shard materialized twice.)"""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=list(versions)), limit=len(versions)
    ).records
    recorded = {r.partition_key: r for r in records if r.run_id == context.run.run_id}
    if recorded.keys() != versions.keys():
        raise RuntimeError(f"materializations of this run not found for shards {sorted(versions.keys() - recorded.keys())}")
    for shard, version in versions.items():
        event = recorded[shard].asset_materialization
        yield AssetMaterialization(
            context.asset_key, partition=shard, metadata=event.metadata,
            tags={**event.tags, DATA_VERSION_TAG: version.value, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"},
        )  # fmt: skip


class ShardSource(EnvSettings):
    """The folder img2dataset wrote its webdataset shards to."""

    ENV = {"directory": "FLIP_SOURCE"}

    directory: str

    @property
    def path(self) -> Path:
        return Path(self.directory)
