"""Shared fixtures: real sample data, a real (ephemeral) Dagster instance, a temp FLIP_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLIP_SHARED", REPO_ROOT.parent / "shared"))
DATA = SHARED / "data"
MODELS = SHARED / "models"
RAW_SHARDS = DATA / "raw_shards"


def run_assets(assets, resources: dict, instance: DagsterInstance, partition: str | None = None, selection=None):
    """Materialize assets (with their checks) on a real instance; the partition is registered first."""
    from flip_assets.partitions import shard_partitions

    if partition is not None and not instance.has_dynamic_partition(shard_partitions.name, partition):
        instance.add_dynamic_partitions(shard_partitions.name, [partition])
    return materialize(
        assets, resources=resources, instance=instance, partition_key=partition, selection=selection, raise_on_error=False
    )


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def make_resources(flip_home: Path, source: Path = RAW_SHARDS, **face_detector) -> dict:
    from flip_assets.resources import FaceDetectorResource, FlipStorage, ShardSource

    return {
        "flip_storage": FlipStorage(home=str(flip_home)),
        "shard_source": ShardSource(directory=str(source)),
        "face_detector": FaceDetectorResource(models_dir=str(MODELS), **face_detector),
    }


@pytest.fixture(scope="session")
def detected_home(tmp_path_factory) -> Path:
    """A FLIP_HOME in which raw_shards and face_detections are materialized for both sample
    shards, once per test session (later stages build on it)."""
    from flip_assets.s01_raw_shards import raw_shards
    from flip_assets.s02_face_detections import face_detections

    home = tmp_path_factory.mktemp("flip_home")
    with DagsterInstance.ephemeral() as inst:
        for shard in ("00000", "00001"):
            result = run_assets([raw_shards, face_detections], make_resources(home), inst, shard)
            assert result.success, f"shard {shard} failed"
    return home
