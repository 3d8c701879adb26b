"""Data versions, staleness and declarative automation on a real instance with the real
raw_shards: re-running an unchanged shard leaves everything downstream in sync and requests
nothing; new content or a new code version does. Also a range run (BackfillPolicy.single_run)
in which one shard fails."""

from __future__ import annotations

import io
import shutil
import tarfile

import pytest
from conftest import RAW_SHARDS, make_resources, run_assets
from dagster import AssetKey, Definitions, MaterializeResult, asset, evaluate_automation_conditions, materialize
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from flip_assets.core.io.shards import shard_version
from flip_assets.defs.automation import REFRESH_ON_CHANGE, automation_sensor
from flip_assets.defs.shards import shard_partitions
from flip_assets.defs.curation.s01_raw_shards import raw_shards

SHARDS = ("00000", "00001")
RANGE_TAGS = {"dagster/asset_partition_range_start": "00000", "dagster/asset_partition_range_end": "00001"}


def downstream_of_raw_shards(code_version: str):
    """An unpartitioned asset reading every raw_shards partition, like face_keywords (which
    also needs face_detections: too slow to compute twice here)."""

    @asset(deps=[raw_shards], code_version=code_version, automation_condition=REFRESH_ON_CHANGE)
    def shard_summary() -> MaterializeResult:
        return MaterializeResult()

    return shard_summary


def link_source(folder, tar_of: dict[str, str], origin=RAW_SHARDS):
    """A shard folder whose NNNNN.tar is a link to the shard tar_of[NNNNN] of `origin` (the
    sample shards; sidecars alike)."""
    folder.mkdir(exist_ok=True)
    for shard, sample in tar_of.items():
        for suffix in (".tar", ".parquet", "_stats.json"):
            link = folder / f"{shard}{suffix}"
            link.unlink(missing_ok=True)
            link.symlink_to(origin / f"{sample}{suffix}")
    return folder


def resolver(instance, defs: Definitions) -> CachingStaleStatusResolver:
    """Dagster's own reading of data versions and staleness, as the UI shows them now."""
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance, asset_graph=graph,
    )  # fmt: skip
    return CachingStaleStatusResolver(instance, graph, view)


def status(instance, defs: Definitions) -> StaleStatus:
    """What the UI shows for shard_summary (Unsynced is STALE)."""
    return resolver(instance, defs).get_status(AssetKey("shard_summary"))


def test_only_a_real_change_upstream_makes_downstream_unsynced_and_refreshes_it(instance, tmp_path):
    source = link_source(tmp_path / "source", {s: s for s in SHARDS})
    resources = make_resources(tmp_path / "home", source)
    summary = downstream_of_raw_shards("1")
    defs = Definitions(assets=[raw_shards, summary], resources=resources)
    for shard in SHARDS:
        assert run_assets([raw_shards], resources, instance, shard).success
    assert materialize([summary], instance=instance).success
    assert status(instance, defs) == StaleStatus.FRESH
    ticks = evaluate_automation_conditions(defs, instance)  # the first tick only sets the cursor

    # The same shard again: the same bytes, so the same data version (not a new run id).
    assert run_assets([raw_shards], resources, instance, "00000").success
    assert status(instance, defs) == StaleStatus.FRESH
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.total_requested == 0

    # Shard 00000 now holds other samples: new content, downstream is unsynced and requested.
    link_source(source, {"00000": "00001"})
    assert run_assets([raw_shards], resources, instance, "00000").success
    assert status(instance, defs) == StaleStatus.STALE
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.get_requested_partitions(AssetKey("shard_summary")) == {None}
    assert materialize([summary], instance=instance).success
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.total_requested == 0  # refreshed: nothing left to do

    # A new code version of the downstream asset: requested again, its inputs unchanged.
    changed = Definitions(assets=[raw_shards, downstream_of_raw_shards("2")], resources=resources)
    assert status(instance, changed) == StaleStatus.STALE
    ticks = evaluate_automation_conditions(changed, instance, cursor=ticks.cursor)
    assert ticks.get_requested_partitions(AssetKey("shard_summary")) == {None}


def test_a_range_run_records_each_shard_and_names_the_one_that_failed(instance, tmp_path):
    source = link_source(tmp_path / "source", {"00000": "00000"})
    # 00001 is registered but has no file in this source: a key added by hand, or a deleted shard.
    instance.add_dynamic_partitions(shard_partitions.name, ["00000", "00001"])
    result = materialize(
        [raw_shards], resources=make_resources(tmp_path / "home", source), instance=instance, tags=RANGE_TAGS,
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "1 of 2 shards failed (00001)" in message and "00001.tar" in message, message
    materialized = {e.materialization.partition for e in result.get_asset_materialization_events()}
    assert materialized == {"00000"}
    assert (tmp_path / "home" / "raw_shards" / "00000.parquet").is_file()
    assert not (tmp_path / "home" / "raw_shards" / "00001.parquet").exists()


def test_a_range_run_gives_each_shard_its_own_metadata_and_data_version(instance, tmp_path):
    instance.add_dynamic_partitions(shard_partitions.name, list(SHARDS))
    resources = make_resources(tmp_path)
    result = materialize([raw_shards], resources=resources, instance=instance, tags=RANGE_TAGS)
    samples = {e.materialization.partition: e.materialization.metadata["samples"].value for e in result.get_asset_materialization_events()}
    assert samples == {"00000": 100, "00001": 99}  # each its own count
    [unique] = [c for c in result.get_asset_check_evaluations() if c.check_name == "unique_keys"]
    assert unique.passed and unique.metadata["shards"].value == 2
    # The version a run of the shard alone gives it: its bytes, not the range it ran in.
    now = resolver(instance, Definitions(assets=[raw_shards], resources=resources))
    code_version = raw_shards.code_versions_by_key[AssetKey("raw_shards")]
    assert {s: now.get_current_data_version(AssetKey("raw_shards"), s).value for s in SHARDS} == {
        s: shard_version(RAW_SHARDS, s, code_version) for s in SHARDS
    }


def test_a_deleted_shard_file_fails_its_run_naming_the_file_and_keeps_the_output(instance, tmp_path):
    source = link_source(tmp_path / "source", {"00000": "00000"})
    resources = make_resources(tmp_path / "home", source)
    assert run_assets([raw_shards], resources, instance, "00000").success
    published = tmp_path / "home" / "raw_shards" / "00000.parquet"
    before = published.read_bytes()
    (source / "00000.tar").unlink()
    result = run_assets([raw_shards], resources, instance, "00000")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"shard tar not found: {source / '00000.tar'}" in str(failure.event_specific_data.error)
    assert published.read_bytes() == before  # nothing lost
    assert instance.get_dynamic_partitions(shard_partitions.name) == ["00000"]


def test_a_shard_that_failed_for_good_does_not_hold_back_the_unpartitioned_stages(instance, tmp_path):
    source = link_source(tmp_path / "source", {"00000": "00000"})  # 00001 is registered, its file missing
    resources = make_resources(tmp_path / "home", source)
    defs = Definitions(assets=[raw_shards, downstream_of_raw_shards("1")], resources=resources)
    instance.add_dynamic_partitions(shard_partitions.name, ["00000", "00001"])
    ticks = evaluate_automation_conditions(defs, instance)
    assert run_assets([raw_shards], resources, instance, "00000").success
    assert not run_assets([raw_shards], resources, instance, "00001").success
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.get_requested_partitions(AssetKey("shard_summary")) == {None}


def copy_with_one_caption_changed(shard: str, folder):
    """A copy of a sample shard in `folder` whose tar differs in one member: the first caption."""
    folder.mkdir()
    for suffix in (".parquet", "_stats.json"):
        shutil.copy(RAW_SHARDS / f"{shard}{suffix}", folder / f"{shard}{suffix}")
    changed = None
    with tarfile.open(RAW_SHARDS / f"{shard}.tar") as source, tarfile.open(folder / f"{shard}.tar", "w") as copy:
        for member in source:
            data = source.extractfile(member).read()
            if changed is None and member.name.endswith(".txt"):
                changed, data = member.name, b"a changed caption"
                member.size = len(data)
            copy.addfile(member, io.BytesIO(data))
    assert changed, "no caption in the sample shard"
    return folder


@pytest.mark.slow  # the whole code location and its automation conditions: tens of seconds
@pytest.mark.e2e
def test_a_noop_rerun_of_the_real_pipeline_changes_no_data_version_and_requests_nothing(instance, tmp_path):
    """The pipeline's own definitions and automation conditions: materialize raw_shards as a
    backfill does (one range run) and raw_shard_pairs, which reads every shard; re-running the
    same bytes, as a range or one shard, keeps every data version, so nothing turns Unsynced and
    automation requests nothing. One changed caption in a shard does both. The instance is
    ephemeral (in-memory SQLite) as in the other tests here: the same storage code as the file
    SQLite of the checkout's dagster.yaml, which opens a file connection per query, and the
    whole graph's evaluation asks for the shards thousands of times (half this test's time)."""
    from flip_assets.definitions import DOMAINS
    from flip_assets.defs.resources import build_resources

    source = link_source(tmp_path / "source", {s: s for s in SHARDS})
    resources = {**build_resources(), **make_resources(tmp_path / "home", source)}
    defs = Definitions.merge(Definitions(resources=resources, sensors=[automation_sensor]), *DOMAINS)
    job = defs.resolve_implicit_global_asset_job_def()
    shards, pairs = AssetKey("raw_shards"), AssetKey("raw_shard_pairs")
    instance.add_dynamic_partitions(shard_partitions.name, list(SHARDS))

    def run(key: AssetKey, **kwargs) -> None:
        result = job.execute_in_process(instance=instance, asset_selection=[key], raise_on_error=False, **kwargs)
        assert result.success, key

    def versions() -> dict:
        now = resolver(instance, defs)
        return {s: now.get_current_data_version(shards, s).value for s in SHARDS}

    def unsynced() -> dict:
        """Every asset (partition) materialized so far that is not up to date."""
        now, graph = resolver(instance, defs), defs.resolve_asset_graph()
        statuses = {
            (key.to_user_string(), p): now.get_status(key, p)
            for key in graph.materializable_asset_keys for p in (SHARDS if graph.get(key).is_partitioned else [None])
        }  # fmt: skip
        return {k: v.value for k, v in statuses.items() if v not in (StaleStatus.FRESH, StaleStatus.MISSING)}

    run(shards, tags=RANGE_TAGS)  # a backfill of raw_shards (single-run policy), or make pipeline
    run(pairs)
    before = versions()
    assert len(set(before.values())) == len(SHARDS), before  # each shard's own version
    assert unsynced() == {}
    ticks = evaluate_automation_conditions(defs, instance)  # the first tick only sets the cursor

    run(shards, tags=RANGE_TAGS)  # the same bytes again, as a backfill...
    assert versions() == before
    assert unsynced() == {}
    run(shards, partition_key="00000")  # ...and as new_shards_sensor runs one shard
    assert versions() == before
    assert unsynced() == {}
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.total_requested == 0

    # One caption changed in shard 00000: a new data version for it alone; raw_shard_pairs is
    # Unsynced and requested, and so is the next stage of that shard.
    changed = copy_with_one_caption_changed("00000", tmp_path / "changed")
    link_source(source, {"00000": "00000"}, origin=changed)
    run(shards, partition_key="00000")
    after = versions()
    assert after["00000"] != before["00000"] and after["00001"] == before["00001"]
    assert unsynced() == {("raw_shard_pairs", None): "STALE"}
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.get_requested_partitions(pairs) == {None}
    assert ticks.get_requested_partitions(AssetKey("face_detections")) == {"00000"}


def test_a_shard_outside_the_learning_sample_leaves_the_learned_stages_in_sync(instance, tmp_path):
    """face_keywords, caption_classifier_dataset and face_description_test depend on raw_shards
    and face_detections through the learning sample's partitions (FLIP_LEARNING_SHARDS, default
    00000 to 00009): a new shard outside it neither makes them Unsynced nor requests them, unlike
    an asset reading every shard; a change inside the sample does both. Their own bodies (Word2Vec,
    detection) are too slow to run here: a stand-in with the same dependencies, and the real
    assets' mappings checked to be that one."""
    from flip_assets.defs.curation.s03_face_keywords import face_keywords
    from flip_assets.defs.curation.s04_caption_classifier import caption_classifier_dataset, face_description_test
    from flip_assets.defs.shards import LEARNING_SAMPLE, LEARNING_SHARDS, learning_sample_deps

    assert LEARNING_SHARDS == tuple(f"{n:05d}" for n in range(10))  # the default: the sample data's shards
    for learned in (face_keywords, caption_classifier_dataset, face_description_test):
        for upstream in ("raw_shards", "face_detections"):
            assert learned.get_partition_mapping_for_dep(AssetKey(upstream)) == LEARNING_SAMPLE, (learned.key, upstream)

    @asset(deps=learning_sample_deps("raw_shards"), code_version="1", automation_condition=REFRESH_ON_CHANGE)
    def learned_stage() -> MaterializeResult:
        return MaterializeResult()

    every_shard, learned = AssetKey("shard_summary"), AssetKey("learned_stage")
    # The sample shards (those of the sample data), and 00010 outside it (a copy of 00001).
    source = link_source(tmp_path / "source", {**{s: s for s in LEARNING_SHARDS}, "00010": "00001"})
    resources = make_resources(tmp_path / "home", source)
    defs = Definitions(assets=[raw_shards, downstream_of_raw_shards("1"), learned_stage], resources=resources)
    instance.add_dynamic_partitions(shard_partitions.name, list(LEARNING_SHARDS))
    sample_range = {"dagster/asset_partition_range_start": LEARNING_SHARDS[0], "dagster/asset_partition_range_end": LEARNING_SHARDS[-1]}
    assert materialize([raw_shards], resources=resources, instance=instance, tags=sample_range).success
    assert materialize([downstream_of_raw_shards("1"), learned_stage], instance=instance).success
    ticks = evaluate_automation_conditions(defs, instance)  # the first tick only sets the cursor

    assert run_assets([raw_shards], resources, instance, "00010").success  # a new shard, outside the sample
    now = resolver(instance, defs)
    assert now.get_status(learned) == StaleStatus.FRESH
    assert now.get_status(every_shard) == StaleStatus.STALE  # what the learned stages did before
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.get_requested_partitions(learned) == set()
    assert ticks.get_requested_partitions(every_shard) == {None}

    # A changed caption in the sample's shard 00000 makes the learned stage Unsynced and requests it.
    assert materialize([downstream_of_raw_shards("1")], instance=instance).success
    changed = copy_with_one_caption_changed("00000", tmp_path / "changed")
    link_source(source, {"00000": "00000"}, origin=changed)
    assert run_assets([raw_shards], resources, instance, "00000").success
    assert resolver(instance, defs).get_status(learned) == StaleStatus.STALE
    ticks = evaluate_automation_conditions(defs, instance, cursor=ticks.cursor)
    assert ticks.get_requested_partitions(learned) == {None}
