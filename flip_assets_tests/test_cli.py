"""The README's command lines, run as a user runs them against an instance in a temp DAGSTER_HOME
(the checkout's dagster.yaml): a range of partitions in one run, and the same through `dg launch`
(one partition: test_docs_commands.py runs the README's line as written); and the clear failure of
a typo in the run config or an unregistered shard."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import MODELS, RAW_SHARDS, REPO_ROOT

from flip_assets.tools.run_pipeline import register_shards

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


@pytest.fixture
def cli_env(tmp_path) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ, "DAGSTER_HOME": str(home), "FLIP_HOME": str(tmp_path / "flip_home"),
        "FLIP_SOURCE": str(RAW_SHARDS), "FLIP_MODELS": str(MODELS),
        # YuNet: seconds per shard on the CPU; this is about the command line, not the detector.
        "FLIP_DETECTOR": "yunet", "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }  # fmt: skip


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    # The working directory is DAGSTER_HOME: dagster.yaml's storage paths are relative to it.
    return subprocess.run(args, cwd=env["DAGSTER_HOME"], env=env, capture_output=True, text=True, timeout=600)


def cli_at_once(env: dict, commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """cli() of independent commands started together: each spends seconds importing Dagster and
    the definitions, which two cores do side by side."""
    started = [subprocess.Popen(c, cwd=env["DAGSTER_HOME"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    done = []
    for command, process in zip(commands, started, strict=True):
        stdout, stderr = process.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return done


@contextmanager
def instance_of(env: dict):
    from dagster import DagsterInstance

    cwd = os.getcwd()
    os.chdir(env["DAGSTER_HOME"])
    try:
        with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            yield instance
    finally:
        os.chdir(cwd)


def materialized(env: dict) -> dict[str, list[str]]:
    from dagster import AssetKey

    with instance_of(env) as instance:
        return {
            asset: sorted(r.partition_key for r in instance.fetch_materializations(AssetKey(asset), limit=100).records)
            for asset in ("raw_shards", "face_detections")
        }


@pytest.mark.slow
def test_a_range_of_partitions_in_one_run_and_through_dg_launch(cli_env):
    with instance_of(cli_env) as instance:  # what `python -m flip_assets.tools.run_pipeline --register-only` does
        register_shards(instance, RAW_SHARDS)

    # One partition (`--select raw_shards --partition 00000`) is the README's own line, run as
    # written by test_docs_commands.py::test_the_cheap_commands_run_as_written (raw_shards alone).
    # Both stages over both shards in one run: the single-run backfill policy allows it.
    ranged = cli(cli_env, str(BIN / "dagster"), "asset", "materialize", "-m", "flip_assets.definitions",
                 "--select", "raw_shards,face_detections", "--partition-range", "00000...00001")  # fmt: skip
    assert ranged.returncode == 0, ranged.stderr[-3000:]
    # A range run records each shard twice: Dagster's event, then one with the shard's own data
    # version (defs/shards.py, per_shard).
    assert materialized(cli_env) == {"raw_shards": ["00000"] * 2 + ["00001"] * 2, "face_detections": ["00000", "00000", "00001", "00001"]}

    launched = cli(cli_env, str(BIN / "dg"), "launch", "-m", "flip_assets.definitions",
                   "--assets", "face_detections", "--partition-range", "00000...00001")  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert materialized(cli_env)["face_detections"] == ["00000"] * 4 + ["00001"] * 4


def test_a_typo_in_run_config_fails_naming_it(cli_env):
    typo = cli(cli_env, str(BIN / "dagster"), "asset", "materialize", "-m", "flip_assets.definitions",
               "--select", "aigc_samples", "--config-json", '{"ops": {"aigc_samples": {"config": {"sampels": 2}}}}')  # fmt: skip
    assert typo.returncode != 0
    assert 'unexpected config entry "sampels"' in typo.stderr, typo.stderr[-2000:]


def test_a_shard_that_is_not_registered_fails_in_a_few_lines_naming_the_registered_ones(cli_env):
    """A mistyped or unregistered shard: a short error naming the registered shards and how to
    register one, not Dagster's 20-frame traceback that names neither."""
    with instance_of(cli_env) as instance:
        register_shards(instance, RAW_SHARDS)
        registered = sorted(instance.get_dynamic_partitions("shards"))
    materialize = [str(BIN / "dagster"), "asset", "materialize", "-m", "flip_assets.definitions", "--select", "raw_shards"]
    launch = [str(BIN / "dg"), "launch", "-m", "flip_assets.definitions", "--assets", "raw_shards"]
    commands = [
        [*materialize, "--partition", "99999"], [*materialize, "--partition-range", f"{registered[0]}...99999"],
        [*launch, "--partition", "99999"],
    ]  # fmt: skip
    for done in cli_at_once(cli_env, commands):
        assert done.returncode != 0
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3, done.stderr[-3000:]
        assert "'99999'" in done.stderr and f"{len(registered)} registered, {registered[0]}...{registered[-1]}" in done.stderr
        assert "python -m flip_assets.tools.shards add" in done.stderr
