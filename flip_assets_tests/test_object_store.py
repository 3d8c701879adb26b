"""FLIP_HOME on an object store: stages materialize through a real Dagster instance against a
real S3 server on 127.0.0.1 (moto's, installed from PyPI), publish the same files as with a
folder, never expose a refused or partial object, let a training resume and its checkpoint be
evaluated on other machines, and fail fast when the store is unreachable."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time

import pyarrow.parquet as pq
import pytest
from conftest import DATA, make_resources, make_text_resources, run_assets
from dagster import RunConfig, materialize
from pyarrow import fs as pafs
from test_publishing import Verdict, raw_shards_with_verdict
from test_release import STAGES, resources

from flip_assets.core.io import storage
from flip_assets.defs.shards import shard_partitions
from flip_assets.defs.curation.s01_raw_shards import raw_shards
from flip_assets.defs.curation.s02_face_detections import face_detections
from flip_assets.defs.curation.s03_face_keywords import face_keywords
from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs
from flip_assets.defs.release.assets import flip_release, release_candidates, release_index
from flip_assets.defs.storage import FlipStorage

BUCKET, SHARD = "flip-test", "00000"
HOME = f"s3://{BUCKET}/flip"


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free port of 127.0.0.1, a bucket in it, and the SDK's credentials
    in the environment (where a deployment puts them: never in FlipStorage's settings)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}.items():
            env.setenv(name, value)
        fs = pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True)
        fs.create_dir(BUCKET)
        yield endpoint, fs
    server.stop()


def s3_storage(endpoint: str, cache, home: str = HOME) -> FlipStorage:
    return FlipStorage(home=home, local_cache=str(cache), s3_endpoint=endpoint)


def objects(fs, folder: str) -> set[str]:
    selector = pafs.FileSelector(f"{BUCKET}/flip/{folder}", recursive=True, allow_not_found=True)
    return {i.path.split(f"{folder}/", 1)[1] for i in fs.get_file_info(selector) if i.type == pafs.FileType.File}


def published_bytes(fs, folder: str, name: str) -> bytes:
    """The bytes of file `name` an asset folder publishes: from its manifest's version, else its plain key."""
    manifest, key = f"{BUCKET}/flip/{folder}/.manifest.json", f"{BUCKET}/flip/{folder}/{name}"
    if fs.get_file_info(manifest).type == pafs.FileType.File:
        with fs.open_input_file(manifest) as f:
            version = json.load(f)["version"]
        key = f"{BUCKET}/flip/{folder}/.versions/{version}/{name}"
    with fs.open_input_file(key) as f:
        return f.read()


def published(fs, folder: str) -> set[str]:
    """The files an asset folder publishes: those its manifest names (an unpartitioned asset's
    version, under .versions/) and its plain keys outside dot folders."""
    plain = {name for name in objects(fs, folder) if not any(part.startswith(".") for part in name.split("/"))}
    manifest = f"{BUCKET}/flip/{folder}/.manifest.json"
    if fs.get_file_info(manifest).type == pafs.FileType.NotFound:
        return plain
    with fs.open_input_file(manifest) as f:
        return plain | set(json.load(f)["files"])


@pytest.mark.slow
@pytest.mark.e2e
def test_stages_publish_to_s3_what_they_publish_to_a_folder(s3, detected_home, tmp_path, instance):
    endpoint, fs = s3
    resources = {**make_resources(detected_home), "flip_storage": s3_storage(endpoint, tmp_path / "pod_a")}
    result = run_assets([raw_shards, face_detections], resources, instance, SHARD)
    assert result.success
    for event in result.get_asset_materialization_events():
        m = event.materialization
        assert m.metadata["path"].value == f"{HOME}/{m.asset_key.to_user_string()}/{SHARD}.parquet"
        assert m.metadata["published"].value is True

    # Only the published files are in the store: no temp object of the commit is left.
    for asset in ("raw_shards", "face_detections"):
        assert objects(fs, asset) == {f"{SHARD}.parquet"}
        with fs.open_input_file(f"{BUCKET}/flip/{asset}/{SHARD}.parquet") as f:
            published = f.read()
        # The same bytes as the session's run of the same stage into a folder: same data version.
        assert published == (detected_home / asset / f"{SHARD}.parquet").read_bytes()

    # Another machine (its own empty cache) reads what this one published.
    other = s3_storage(endpoint, tmp_path / "pod_b")
    assert other.read("face_detections", SHARD).equals(pq.read_table(detected_home / "face_detections" / f"{SHARD}.parquet"))
    assert other.path("face_detections", "*").parent.joinpath(f"{SHARD}.parquet").is_file()



@pytest.mark.slow
@pytest.mark.e2e
def test_text_filtering_reads_its_models_from_the_store(s3, text_filtered, tmp_path, instance):
    """face_text_pairs on a machine that has none of its inputs: the keywords and the caption
    classifier's model folder come from the store, as another machine published them."""
    endpoint, fs = s3
    home = f"s3://{BUCKET}/flip/text"
    for asset in ("raw_shards", "face_detections", "face_keywords", "caption_classifier"):
        pafs.copy_files(str(text_filtered.home / asset), f"{BUCKET}/flip/text/{asset}", destination_filesystem=fs)
    resources = {**make_text_resources(tmp_path / "unused"), "flip_storage": s3_storage(endpoint, tmp_path / "pod", home)}
    assert run_assets([face_text_pairs], resources, instance, SHARD).success
    with fs.open_input_file(f"{BUCKET}/flip/text/face_text_pairs/{SHARD}.parquet") as f:
        assert f.read() == (text_filtered.home / "face_text_pairs" / f"{SHARD}.parquet").read_bytes()

    # An unpartitioned stage reading every shard, whose model file is committed with its table.
    assert run_assets([face_keywords], resources, instance).success
    assert {"all.parquet", "word2vec.model"} <= published(fs, "text/face_keywords")



@pytest.mark.slow
@pytest.mark.e2e
def test_the_release_on_the_store_equals_the_release_in_a_folder(s3, denoised_home, tmp_path, instance):
    """release_candidates (every shard), release_index and flip_release of one shard, from the
    session's stage files, once with them in the store and once in a folder."""
    endpoint, fs = s3
    folder = tmp_path / "folder"
    for asset in STAGES:
        pafs.copy_files(str(denoised_home / asset), f"{BUCKET}/flip/release/{asset}", destination_filesystem=fs)
        shutil.copytree(denoised_home / asset, folder / asset, ignore=shutil.ignore_patterns(".staging", "rejected"))
    on_store = {**resources(folder), "flip_storage": s3_storage(endpoint, tmp_path / "pod", f"s3://{BUCKET}/flip/release")}
    for run in (on_store, resources(folder)):
        for shard in ("00000", "00001"):
            assert run_assets([release_candidates], run, instance, shard).success
            assert run_assets([release_index], run, instance, shard).success
        assert run_assets([flip_release], run, instance, SHARD).success
    for asset, partition in (("release_index", SHARD), ("flip_release", SHARD), ("release_exclusions", SHARD)):
        published = published_bytes(fs, f"release/{asset}", f"{partition}.parquet")
        assert published == (folder / asset / f"{partition}.parquet").read_bytes(), asset


def test_a_refused_output_never_becomes_a_visible_object(s3, tmp_path, instance):
    endpoint, fs = s3
    home = f"s3://{BUCKET}/flip/refusals"
    resources = {**make_resources(tmp_path / "unused"), "flip_storage": s3_storage(endpoint, tmp_path / "writer", home)}
    key = f"{BUCKET}/flip/refusals/raw_shards/{SHARD}.parquet"

    def materialize_raw(schema_ok: bool):
        instance.add_dynamic_partitions(shard_partitions.name, [SHARD])
        return materialize(
            [raw_shards_with_verdict], resources=resources, instance=instance, partition_key=SHARD,
            run_config=RunConfig(ops={"raw_shards": Verdict(schema_ok=schema_ok)}), raise_on_error=False,
        )  # fmt: skip

    assert materialize_raw(schema_ok=True).success
    assert fs.get_file_info(key).type == pafs.FileType.File
    bad = materialize_raw(schema_ok=False)
    # The refused file and its note are set aside, and the earlier publication withdrawn.
    assert fs.get_file_info(key).type == pafs.FileType.NotFound
    assert objects(fs, "refusals/raw_shards") == {f"rejected/{SHARD}.parquet", f"rejected/{SHARD}.json"}
    # A later run on another machine refuses it, naming the check and the run.
    reader = s3_storage(endpoint, tmp_path / "reader", home)
    with pytest.raises(storage.InputRejected, match=f"{bad.run_id}.*schema_and_values"):
        storage.require_file(reader.path("raw_shards", SHARD))

    assert materialize_raw(schema_ok=True).success
    assert objects(fs, "refusals/raw_shards") == {f"{SHARD}.parquet"}
    assert storage.require_file(reader.path("raw_shards", SHARD)).is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("problem", ["no server", "no bucket"])
def test_an_unreachable_store_fails_the_run_fast_naming_flip_home(s3, problem, tmp_path, instance):
    endpoint, _ = s3
    home = f"s3://{BUCKET}/flip"
    if problem == "no server":
        endpoint = f"http://127.0.0.1:{free_port()}"
    else:
        home = "s3://no-such-bucket/flip"
    resources = {**make_resources(tmp_path / "unused"), "flip_storage": s3_storage(endpoint, tmp_path / "cache", home)}
    started = time.monotonic()
    result = run_assets([raw_shards], resources, instance, SHARD)
    assert not result.success and time.monotonic() - started < 60
    errors = " ".join(str(e.event_specific_data.error) for e in result.all_events if e.is_failure)
    assert f"FLIP_HOME={home} (endpoint {endpoint})" in errors
    assert ("no-such-bucket" in errors) if problem == "no bucket" else ("reaching the bucket" in errors)


def test_a_checkpoint_trained_on_the_store_resumes_and_is_evaluated_on_other_machines(s3, tmp_path, instance):
    """Three machines (each its own empty cache): one writes the pairs and is killed 2 steps
    into training, its state committed at the save; the next resumes from the store's state and
    publishes the checkpoint; the third evaluates that checkpoint, read from the store."""
    import torch

    from flip_assets.core.training.contrastive_training import prepare_inputs, train
    from flip_assets.core.training.dual_encoder import build_model, load_tokenizer
    from flip_assets.defs.evaluation.resources import EvaluationResource
    from flip_assets.defs.evaluation.tables import flip_eval_tables
    from flip_assets.defs.training.checkpoint import flip_checkpoint
    from flip_assets.defs.shared_resources import PerplexityResource, TrainingResource
    from flip_assets.defs.training.pairs import celeba_caption_pairs

    endpoint, fs = s3
    home = f"s3://{BUCKET}/flip/training"
    training = TrainingResource(eval_data=str(DATA / "eval"), celeba_samples=96, steps=6, seeds=2, sources="celeba_caption_pairs")
    killed = s3_storage(endpoint, tmp_path / "pod_a", home)
    assert run_assets([celeba_caption_pairs], {"flip_storage": killed, "training": training}, instance).success

    # What flip_checkpoint does on pod A until it is killed after step 2 (it saves at the stop).
    config, cpu, pairs = training.training_config(), torch.device("cpu"), killed.read("celeba_caption_pairs")
    model = build_model(config, seed=training.seed)
    inputs = prepare_inputs(model, load_tokenizer(), *(pairs[c].to_pylist() for c in ("image", "sha256", "caption")), None, cpu)
    state_dir = killed.resume_dir("flip_checkpoint/state")
    train(model, inputs, config, training.seed, cpu, state_dir, log=lambda _: None, stop_after=2, on_save=lambda _: killed.share(state_dir))
    assert objects(fs, "training/flip_checkpoint") == {"state/training_state.pt"}

    trainer = {"flip_storage": s3_storage(endpoint, tmp_path / "pod_b", home), "training": training}
    result = run_assets([flip_checkpoint], trainer, instance)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert result.get_asset_materialization_events()[0].materialization.metadata["resumed_from_step"].value == 2
    # The model folder and the figure committed with the table; the finished run's state removed.
    files = published(fs, "training/flip_checkpoint")
    assert {"all.parquet", "training_curves.png", "model/config.json", "model/model.safetensors", "model/seeds/seed-1.safetensors"} <= files
    assert not [p for p in files if p.startswith("state/")], files
    assert not [p for p in objects(fs, "training/flip_checkpoint") if p.startswith(".staging/")]

    evaluator = {
        "flip_storage": s3_storage(endpoint, tmp_path / "pod_c", home), "training": training, "perplexity": PerplexityResource(),
        "evaluation": EvaluationResource(test_images=16, train_images=16, quality_samples=4, resamples=100),
    }  # fmt: skip
    result = run_assets([flip_eval_tables], evaluator, instance)
    # 6 steps learn nothing: only the gain check (a warning) may fail.
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations() if e.check_name != "trained_beats_best_baseline")
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["trained_on"].value == "celeba_caption_pairs" and metadata["seeds"].value == [0, 1]  # seeds/ read from the store
    assert {"all.parquet", "zero_shot.png"} <= published(fs, "training/flip_eval_tables")
