"""Runs of one partition at once, and a run killed while publishing the release pair, through a
real Dagster instance in separate processes (as two CLI calls or the main command beside the
UI would run them): what is published always matches the metadata of the run that published
it, and a reader never sees one file of the pair without the other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import REPO_ROOT, run_assets
from dagster import DagsterInstance, materialize

from flip_assets.core.io import storage
from flip_assets.core.release.release import CANDIDATES_SCHEMA
from flip_assets.defs.release.assets import release_index
from flip_assets.defs.release.resources import ReleaseResource
from flip_assets.defs.storage import FlipStorage

pytestmark = pytest.mark.slow  # separate Python processes importing Dagster (about 10 s each)

SHARD = "00000"
KEYS = ("000000001", "000000002", "000000003")
BLOCKED = KEYS[1]
RUNNER = Path(__file__).with_name("release_run.py")


def candidate(n: int, key: str) -> dict:
    return {
        "key": key, "shard": SHARD, "URL": f"http://example.org/{key}.jpg", "TEXT": f"a smiling woman number {n}",
        "original_caption": f"A smiling woman number {n}", "KEYWORDS": ["smiling"], "HEIGHT": 100, "WIDTH": 100,
        "nsfw_score": 0.01, "laion_nsfw": None, "sha256": f"{n:064x}", "face_count": 1, "face_score": 0.99,
        "face_boxes": [[10.0, 10.0, 50.0, 50.0]], "face_landmarks": [[20.0, 20.0] * 5], "text_score": 0.99,
        "denoise_outcome": "llm", "source_sha256": f"{n + 100:064x}",
        # Perceptual hashes far apart: no near-duplicates.
        "phash": ("0" * 16, "ffffffff00000000", "00000000ffffffff")[n], "image_problem": None,
    }  # fmt: skip


@pytest.fixture
def release_home(tmp_path, monkeypatch):
    """A FLIP_HOME with three candidates of one shard and release_index over them, and a
    DAGSTER_HOME on disk that the runs' processes share."""
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    rows = [candidate(n, key) for n, key in enumerate(KEYS)]
    storage.write_table(storage.partition_path(home, "release_candidates", SHARD), pa.Table.from_pylist(rows, schema=CANDIDATES_SCHEMA))
    with DagsterInstance.get() as instance:
        resources = {"flip_storage": FlipStorage(home=str(home)), "release": ReleaseResource()}
        instance.add_dynamic_partitions("shards", [SHARD])
        assert materialize([release_index], resources=resources, instance=instance, partition_key=SHARD, raise_on_error=False).success
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text(f"http://example.org/{BLOCKED}.jpg\n")
    return home, blocklist


def start(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(RUNNER.parent)])}
    return subprocess.Popen(
        [sys.executable, str(RUNNER), str(home), SHARD, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=300)
    return out


def published_keys(home: Path, asset: str) -> set[str]:
    """What a later stage reads: through FlipStorage, as every stage does."""
    return set(FlipStorage(home=str(home)).read(asset, SHARD).column("key").to_pylist())


def latest_release_materialization(instance: DagsterInstance):
    from dagster import AssetKey

    return instance.get_latest_materialization_event(AssetKey("flip_release")).asset_materialization


def test_two_runs_of_one_partition_at_once_never_publish_each_others_file(release_home):
    home, blocklist = release_home
    # Both stage their release, then wait there, so they overlap whatever the machine's speed.
    plain, blocking = start(home, "--hold", "6"), start(home, "--blocklist", str(blocklist), "--hold", "6")
    outputs = {"plain": finish(plain), "blocking": finish(blocking)}
    succeeded = {name for name, out in outputs.items() if " success" in out}
    assert succeeded, "\n\n".join(outputs.values())
    for name, out in outputs.items():
        if name not in succeeded:  # refused, saying why: never a half-published file
            assert "is being materialized by run" in out, out
    released, excluded = published_keys(home, "flip_release"), published_keys(home, "release_exclusions")
    with DagsterInstance.get() as instance:
        latest = latest_release_materialization(instance)
        run = instance.get_run_by_id(latest and instance.get_latest_materialization_event(latest.asset_key).run_id)
    # The published file is the one the latest successful run checked and described.
    assert latest.metadata["released"].value == len(released)
    blocking_won = "--blocklist" in " ".join(run.tags.get(".args", "")) or BLOCKED not in released
    assert (BLOCKED in excluded) == blocking_won and (BLOCKED in released) != blocking_won
    assert released | excluded == set(KEYS) and not released & excluded


def test_a_run_killed_between_the_two_files_of_the_pair_leaves_no_sample_in_neither(release_home):
    home, blocklist = release_home
    assert " success" in finish(start(home))  # everything released, nothing excluded
    assert published_keys(home, "flip_release") == set(KEYS)
    # The blocklist run dies after putting one file of the pair in place, before the other.
    killed = start(home, "--blocklist", str(blocklist), "--kill-at-publish", "2")
    finish(killed)
    assert killed.returncode == 9
    released, excluded = published_keys(home, "flip_release"), published_keys(home, "release_exclusions")
    assert released | excluded == set(KEYS) and not released & excluded, (released, excluded)
    assert BLOCKED in excluded
    # The partition is not left locked by the dead run: the next run goes through.
    assert " success" in finish(start(home, "--blocklist", str(blocklist)))
    assert published_keys(home, "release_exclusions") == {BLOCKED}
