"""Dagster resources, each configured from environment variables (defaults in brackets).

FLIP_HOME [<checkout>/.flip_home]   where every asset file lives
FLIP_SOURCE [../shared/data/raw_shards]  img2dataset webdataset shards
FLIP_MODELS [../shared/models]      offline detector weights
FLIP_DETECTOR [retinaface]          retinaface | yunet | retinaface_resnet50
FLIP_FACE_THRESHOLD [0.9]           keep a sample when its best face scores above this
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
from dagster import ConfigurableResource, EnvVar
from pydantic import PrivateAttr

from flip_assets.core import storage
from flip_assets.core.detectors import BACKENDS, FaceDetector, build_detector

REPO_ROOT = Path(__file__).resolve().parents[1]


def env_or(name: str, default: str):
    """EnvVar when the variable is set (the UI then shows where the value came from), else the default."""
    return EnvVar(name) if os.environ.get(name) else default


class FlipStorage(ConfigurableResource):
    """Asset files: $FLIP_HOME/<asset_key>/<partition>.parquet, written atomically."""

    home: str

    def path(self, asset_key: str, partition: str | None = None) -> Path:
        return storage.partition_path(Path(self.home), asset_key, partition)

    def directory(self, name: str) -> Path:
        """A folder for non-tabular outputs (models, caches) of one asset."""
        path = Path(self.home) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, asset_key: str, partition: str | None, table: pa.Table) -> Path:
        return storage.write_table(self.path(asset_key, partition), table)

    def read(self, asset_key: str, partition: str | None = None) -> pa.Table:
        return storage.read_table(self.path(asset_key, partition))


class ShardSource(ConfigurableResource):
    """The folder img2dataset wrote its webdataset shards to."""

    directory: str

    @property
    def path(self) -> Path:
        return Path(self.directory)


class FaceDetectorResource(ConfigurableResource):
    """The face detector and the thresholds of the visual filter."""

    backend: str = "retinaface"
    models_dir: str
    batch_size: int = 8
    # Faces at or above this are recorded; the sample is kept on keep_threshold.
    min_face_score: float = 0.5
    keep_threshold: float = 0.9
    # Larger images are refused before decoding (decompression bombs).
    max_pixels: int = 40_000_000
    # Images are shrunk to this longest side before detection; boxes are mapped back.
    max_side: int = 1024

    _detector: FaceDetector | None = PrivateAttr(default=None)

    def setup_for_execution(self, context) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"FLIP_DETECTOR={self.backend!r} is not one of {BACKENDS}")
        if not 0.0 < self.keep_threshold < 1.0:
            raise ValueError(f"FLIP_FACE_THRESHOLD={self.keep_threshold} must lie in (0, 1)")

    def get_detector(self) -> FaceDetector:
        # Built once per process: loading checks the weights' SHA-256 and fails fast naming the file.
        if self._detector is None:
            self._detector = build_detector(self.backend, Path(self.models_dir), self.batch_size, self.min_face_score)
        return self._detector


def build_resources() -> dict:
    return {
        "flip_storage": FlipStorage(home=env_or("FLIP_HOME", str(REPO_ROOT / ".flip_home"))),
        "shard_source": ShardSource(
            directory=env_or("FLIP_SOURCE", str(REPO_ROOT.parent / "shared" / "data" / "raw_shards"))
        ),
        "face_detector": FaceDetectorResource(
            backend=env_or("FLIP_DETECTOR", "retinaface"),
            models_dir=env_or("FLIP_MODELS", str(REPO_ROOT.parent / "shared" / "models")),
            keep_threshold=float(os.environ.get("FLIP_FACE_THRESHOLD", "0.9")),
        ),
    }
