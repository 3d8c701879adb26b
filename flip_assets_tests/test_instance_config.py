"""The instance settings in dagster.yaml: runs whose process died are marked failed by the
daemon's run monitoring, and retried once."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT
from dagster import DagsterInstance, DagsterInvalidConfigError, DagsterRunStatus
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

# A run that materializes one asset (in a pool, as the heavy stages are) in its own process and
# sleeps in it.
SLEEPING_RUN = """
import sys, time
from dagster import DagsterInstance, asset, materialize

@asset(pool="detector")
def sleeper():
    print("started", flush=True)
    time.sleep(600)

materialize([sleeper], instance=DagsterInstance.from_config(sys.argv[1]))
"""


@pytest.fixture
def repo_instance(tmp_path, monkeypatch):
    """An instance built from the repo's dagster.yaml, its storage in tmp_path."""
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)  # the storage paths in dagster.yaml are relative to the working directory
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def test_run_monitoring_and_run_retries_are_on(repo_instance):
    assert repo_instance.run_monitoring_enabled
    assert repo_instance.run_launcher.supports_check_run_worker_health
    assert repo_instance.run_monitoring_poll_interval_seconds == 60
    assert repo_instance.run_monitoring_start_timeout_seconds == 300
    assert repo_instance.run_monitoring_cancel_timeout_seconds == 180
    # Dagster's default launcher cannot resume a run in a new process.
    assert repo_instance.run_monitoring_max_resume_run_attempts == 0
    assert repo_instance.run_retries_enabled
    assert repo_instance.run_retries_max_retries == 1
    assert not repo_instance.run_retries_retry_on_asset_or_op_failure


def _monitor_once(instance: DagsterInstance) -> None:
    """One pass of the daemon's run monitoring."""
    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as context:
        errors = [e for e in execute_run_monitoring_iteration(context, logging.getLogger("run_monitoring")) if e]
    assert not errors, errors


def test_a_run_whose_process_group_was_killed_is_marked_failed(repo_instance, tmp_path):
    worker = subprocess.Popen(
        [sys.executable, "-c", SLEEPING_RUN, str(tmp_path)], cwd=tmp_path, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert worker.stdout.readline() == b"started\n"
        [run] = repo_instance.get_runs()
        _monitor_once(repo_instance)
        assert repo_instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # alive: left alone
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert repo_instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # nothing left to report
    _monitor_once(repo_instance)
    assert repo_instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


def test_a_typo_in_dagster_yaml_fails_naming_the_key(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text().replace("run_monitoring:", "run_monitorng:"))
    with pytest.raises(DagsterInvalidConfigError, match='"run_monitorng"'):
        DagsterInstance.from_config(str(tmp_path))


def test_the_postgres_instance_differs_from_the_local_one_only_in_storage():
    """deploy/dagster.postgres.yaml repeats the local settings (queue, pools, monitoring,
    retries, launcher): the two may not drift apart."""
    local = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    production = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    local_only = {"storage", "local_artifact_storage", "compute_logs"}  # paths in the checkout
    assert {k: v for k, v in local.items() if k not in local_only} == {k: v for k, v in production.items() if k != "storage"}
    assert set(production["storage"]) == {"postgres"}
    assert production["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_heavy_stages_share_pools_of_one_slot(repo_instance):
    from flip_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): sorted(graph.get(key).pools or ()) for key in graph.get_all_asset_keys()}
    assert pools["face_detections"] == ["detector"] and pools["caption_classifier"] == ["training"]
    assert pools["denoised_captions"] == ["llm"] and pools["face_text_pairs"] == ["classifier"]
    assert repo_instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert repo_instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1


def test_a_killed_in_process_run_gives_back_its_pool_slot(repo_instance, tmp_path):
    """`make pipeline` runs in process with no daemon: the next run frees what a killed one held."""
    from flip_assets.run_launcher import fail_dead_runs

    worker = subprocess.Popen(
        [sys.executable, "-c", SLEEPING_RUN, str(tmp_path)], cwd=tmp_path, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert worker.stdout.readline() == b"started\n"
        [run] = repo_instance.get_runs()
        assert fail_dead_runs(repo_instance) == []  # alive: left alone
        assert repo_instance.event_log_storage.get_concurrency_info("detector").claimed_slots
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert fail_dead_runs(repo_instance) == [run.run_id]
    assert repo_instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert not repo_instance.event_log_storage.get_concurrency_info("detector").claimed_slots


def test_the_ui_opens_without_the_community_pop_up(repo_instance):
    """A newcomer's first `make ui` opens on the asset graph, not on Dagster's "Join the Dagster
    community" dialog (the instance's nux setting; the browser test sees the page itself)."""
    assert not repo_instance.nux_enabled
