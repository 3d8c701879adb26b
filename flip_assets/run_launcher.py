"""The instance's run launcher (dagster.yaml): Dagster's default one, plus a worker health check.

The default launcher cannot tell the daemon's run monitoring whether a run's process lives, so
a run whose whole process group was killed (nothing left to report the failure) stayed STARTED
forever. Every run of this instance executes on this machine, and the run's RUN_START event
records the pid of the process that executes it: when no process has that pid, the run is dead.
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterRun, DagsterRunStatus, DefaultRunLauncher, RunsFilter
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

from flip_assets.core.io.processes import pid_alive


def run_pid(instance, run_id: str) -> int | None:
    """The pid of the process that executes the run, from its RUN_START event (None before it)."""
    starts = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    return starts[0].event_log_entry.dagster_event.pid if starts else None


class LocalRunLauncher(DefaultRunLauncher):
    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data)  # the parent's builds a DefaultRunLauncher

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = run_pid(self._instance, run.run_id)
        if pid is None:
            # Monitoring fails a run on any answer but RUNNING or SUCCESS: without a pid, do not guess.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event with a pid yet")
        if pid_alive(pid):
            # A pid reused by another process also lands here: the run then stays STARTED, as before.
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process {pid} is gone (killed?)")


def fail_dead_runs(instance) -> list[str]:
    """Mark failed every unfinished run whose process is gone and give back its pool slots; what
    the daemon's run monitoring does, for in-process runs (`make pipeline`) where no daemon runs:
    a run killed inside a pooled step would otherwise hold the slot and stall the next run."""
    failed = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])):
        pid = run_pid(instance, run.run_id)
        if pid is not None and not pid_alive(pid):
            instance.report_run_failed(run, f"the run's process {pid} is gone (killed?)")
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            failed.append(run.run_id)
    return failed
