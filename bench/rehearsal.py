"""A rehearsal of many shards through Dagster: the daemon, the run queue and the pools, on PostgreSQL.

    nice -n 10 python -m bench.rehearsal [--shards 1000] [--backfill 200] [--per-shard-runs 30]
                                         [--samples-per-shard 3] [--detector yunet] [--workdir DIR] [--keep] [--no-ui]

What it does, on this machine, nothing mocked:
1. writes --shards tiny img2dataset shards (NNNNN.tar/.parquet/_stats.json), each a re-packed run
   of --samples-per-shard samples of the sample shards (data/raw_shards, downloads that failed
   included), under a temp folder (--workdir);
2. starts Debian's PostgreSQL on 127.0.0.1 at a free port (its cluster in the temp folder) and a
   DAGSTER_HOME with deploy/dagster.postgres.yaml, the production instance: run queue of one run,
   one run per backfill and per shard at a time, every pool one step at a time;
3. registers every shard as a partition (what `python -m flip_assets.tools.shards add` does);
4. starts `dagster dev` (webserver, daemon, one code server) and launches, as the UI does, two
   backfills of raw_shards + face_detections: the shard_pipeline job's over the first
   --per-shard-runs shards (one run per shard, as new_shards_sensor runs new shards), then the
   asset page's "Materialize" over the next --backfill shards (an asset backfill: the assets'
   SINGLE_RUN_BACKFILL policy makes it one run for the range);
5. waits until each backfill is done, failing on a failed run or on no progress for --stuck-after s;
6. times the UI in Debian's chromium (Playwright): the asset page and its partitions view,
   and new_shards_sensor's tick over every registered shard.

Prints one JSON object per line: the machine (CPUs, load average, versions), then each figure:
runs per minute, per run the seconds from launch to the run's start (process and code import),
in the steps, and the rest of the run (Dagster's own work: events and checks written to
PostgreSQL), the gap the queue leaves between runs, and the UI load times. `rehearse()` is the
same run for a test (flip_assets_tests/test_rehearsal.py).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import platform
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from flip_assets.core.io.processes import interrupt_group
from flip_assets.defs.resources import SHARED  # the checkout sits beside ../shared

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SHARDS = SHARED / "data" / "raw_shards"
ASSETS = ("raw_shards", "face_detections")
JOB = "shard_pipeline"
PASSWORD = "flip-rehearsal-password"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless as root in a container without a GPU, and nothing fetched from the network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- tiny shards -----------------------------------------------------------------------------


def _sample_members(tar_path: Path) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes} of a sample shard's tar."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path) as tar:
        for info in tar:
            if info.isfile() and "." in info.name:
                key, ext = info.name.rsplit("/", 1)[-1].split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(info).read()
    return samples


def write_tiny_shards(source: Path, count: int, samples_per_shard: int, samples: Path = SAMPLE_SHARDS) -> list[str]:
    """`count` shards in `source`, shard i holding `samples_per_shard` consecutive samples of
    sample shard i mod 10 (as listed in its parquet, failed downloads included), re-keyed as
    img2dataset keys them (shard number, then the sample's place): real images and captions,
    small enough that a run's cost is Dagster's and the code's, not the data's."""
    source.mkdir(parents=True, exist_ok=True)
    originals = sorted(p.stem for p in samples.glob("*.tar"))
    tables = {name: pq.read_table(samples / f"{name}.parquet") for name in originals}
    members = {name: _sample_members(samples / f"{name}.tar") for name in originals}
    shards = []
    for number in range(count):
        shard, original = f"{number:05d}", originals[number % len(originals)]
        table = tables[original]
        start = (number // len(originals) * samples_per_shard) % max(1, table.num_rows - samples_per_shard)
        rows = table.slice(start, samples_per_shard).to_pylist()
        with tarfile.open(source / f"{shard}.tar", "w") as tar:
            for place, row in enumerate(rows):
                key, row["key"] = row["key"], f"{shard}{place:04d}"
                for ext, data in sorted(members[original].get(key, {}).items()):
                    if ext == "json":
                        data = json.dumps({**json.loads(data), "key": row["key"]}).encode()
                    info = tarfile.TarInfo(f"{row['key']}.{ext}")
                    info.size, info.mtime = len(data), 0
                    tar.addfile(info, io.BytesIO(data))
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), source / f"{shard}.parquet")
        successes = sum(r["status"] == "success" for r in rows)
        stats = {"count": len(rows), "successes": successes, "failed_to_download": len(rows) - successes}
        (source / f"{shard}_stats.json").write_text(json.dumps(stats))
        shards.append(shard)
    return shards


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL tools (apt-get install postgresql), or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


class Postgres:
    """A PostgreSQL cluster in a temp folder, listening on 127.0.0.1 only. As root, it runs as
    the Debian package's `postgres` user (PostgreSQL refuses to run as root)."""

    def __init__(self, bindir: Path, password: str = PASSWORD):
        self.bindir, self.password = bindir, password
        self.root = Path(tempfile.mkdtemp(prefix="flip-pg-"))  # not under a root-only folder
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    def init(self) -> None:
        (self.root / "pw").write_text(self.password)
        if self.user:
            shutil.chown(self.root / "pw", self.user)
        self.run("initdb", "-D", str(self.data), "-U", "flip", f"--pwfile={self.root / 'pw'}",
                 "--auth-host=scram-sha-256", "--auth-local=trust")  # fmt: skip

    def start(self) -> None:
        # -k: the Unix socket in the cluster's folder (the system's may not be writable).
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start",
                 "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root}")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def create_database(self, name: str = "dagster") -> None:
        # Through the cluster's Unix socket (trusted); Dagster connects over TCP with the password.
        self.run("createdb", "--no-password", "-h", str(self.root), "-p", str(self.port), "-U", "flip", name)

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self, database: str = "dagster") -> dict:
        return {
            "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": "flip",
            "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": database,
        }  # fmt: skip

    def version(self) -> str:
        return subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()


def production_home(folder: Path, **monitoring) -> Path:
    """A DAGSTER_HOME with deploy/dagster.postgres.yaml (run_monitoring settings overridden by
    `monitoring`) and a workspace.yaml loading the code location from this checkout."""
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    config["run_monitoring"].update(monitoring)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config))
    (folder / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "flip_assets.definitions", "location_name": "flip_assets", "working_directory": str(REPO_ROOT),
    }}]}))  # fmt: skip
    return folder


# --- the rehearsal ---------------------------------------------------------------------------


@dataclass
class RunTiming:
    """One run's moments (epoch seconds) from its event log."""

    run_id: str
    partition: str
    status: str
    created: float
    launched: float | None = None  # RUN_STARTING: the queue handed it to the launcher
    started: float | None = None  # RUN_START: its process runs the job (code imported)
    ended: float | None = None  # RUN_SUCCESS / RUN_FAILURE
    step_seconds: float = 0.0  # sum of its steps, STEP_START to STEP_SUCCESS/FAILURE
    steps: int = 0


def run_timings(instance, run_ids: list[str]) -> list[RunTiming]:
    from dagster import DagsterEventType

    names = {
        DagsterEventType.RUN_STARTING: "launched", DagsterEventType.RUN_START: "started",
        DagsterEventType.RUN_SUCCESS: "ended", DagsterEventType.RUN_FAILURE: "ended",
    }  # fmt: skip
    timings = []
    for record in instance.get_run_records():
        run = record.dagster_run
        if run.run_id not in run_ids:
            continue
        timing = RunTiming(run.run_id, run.tags.get("dagster/partition", ""), run.status.value, record.create_timestamp.timestamp())
        step_start: dict[str, float] = {}
        for event in instance.all_logs(run.run_id):
            kind = event.dagster_event_type
            if kind in names and getattr(timing, names[kind]) is None:
                setattr(timing, names[kind], event.timestamp)
            elif kind == DagsterEventType.STEP_START:
                step_start[event.step_key] = event.timestamp
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE) and event.step_key in step_start:
                timing.step_seconds += event.timestamp - step_start.pop(event.step_key)
                timing.steps += 1
        timings.append(timing)
    return sorted(timings, key=lambda t: t.launched or t.created)


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2), "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "min": round(ordered[0], 2), "max": round(ordered[-1], 2), "mean": round(statistics.fmean(ordered), 2),
    }  # fmt: skip


def run_figures(timings: list[RunTiming], shards: int) -> dict:
    """Runs and shards per minute, from the first run's creation to the last one's end, and
    where a run's time goes."""
    done = [t for t in timings if t.launched and t.started and t.ended]
    if not done:
        return {"runs": len(timings), "finished": 0}
    first, last = min(t.created for t in timings), max(t.ended for t in done)
    gaps = [b.launched - a.ended for a, b in zip(done, done[1:]) if b.launched >= a.ended]
    return {
        "runs": len(timings), "finished": len(done),
        "runs_per_minute": round(60 * len(done) / (last - first), 2),
        "shards_per_minute": round(60 * shards / (last - first), 2),
        "wall_seconds": round(last - first, 1),
        "step_s_per_shard": round(sum(t.step_seconds for t in done) / shards, 2),
        # launch to end, and what of it is not the steps (the instance's overhead per run)
        "run_wall_s": summary([t.ended - t.launched for t in done]),
        "step_s": summary([t.step_seconds for t in done]),
        "overhead_s": summary([(t.ended - t.launched) - t.step_seconds for t in done]),
        # of the overhead: process start and code import; Dagster's work inside the run
        "launch_to_start_s": summary([t.started - t.launched for t in done]),
        "in_run_not_steps_s": summary([(t.ended - t.started) - t.step_seconds for t in done]),
        # a run's end to the next run's launch: the queue's dequeue tick
        "queue_gap_s": summary(gaps),
    }  # fmt: skip


def graphql(url: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""


def launch_backfill(url: str, shards: list[str], title: str, run_per_shard: bool) -> str:
    """A backfill of raw_shards + face_detections for these shards, as the UI launches it.

    run_per_shard: the shard_pipeline job's "Launch backfill" (two of its assets), one run per
    shard, as new_shards_sensor runs new shards. Otherwise the asset page's "Materialize": an
    asset backfill, whose runs follow the assets' policy (SINGLE_RUN_BACKFILL: one run for a range
    of shards). Every run carries the dagster/backfill tag the queue limits."""
    params = {"partitionNames": shards, "assetSelection": [{"path": [a]} for a in ASSETS], "title": title}
    if run_per_shard:
        params["selector"] = {
            "partitionSetName": f"{JOB}_partition_set",
            "repositorySelector": {"repositoryName": "__repository__", "repositoryLocationName": "flip_assets"},
        }
    result = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {result}")
    return result["backfillId"]


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"dagster dev did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


def wait_for_code_location(url: str, timeout_s: float = 300) -> None:
    """Until the webserver's code server has loaded flip_assets (a backfill launched before fails)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = graphql(url, query, {})["workspaceOrError"].get("locationEntries", [])
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            return
        time.sleep(2)
    raise RuntimeError(f"the code location did not load within {timeout_s} s")


@dataclass
class Outcome:
    """What a rehearsal found: the figures, and what went wrong (empty when nothing did)."""

    figures: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    materialized: dict[str, list[str]] = field(default_factory=dict)  # asset -> partitions
    backfilled: list[str] = field(default_factory=list)  # the shards the backfills targeted

    def not_materialized(self) -> dict[str, list[str]]:
        """asset -> the backfilled shards it has no materialization of."""
        return {a: sorted(set(self.backfilled) - set(self.materialized.get(a, []))) for a in ASSETS}


def wait_for_backfill(instance, backfill_id: str, stuck_after_s: float, daemon_alive) -> list[str]:
    """Problems seen while the backfill ran: a failed run, no progress for stuck_after_s, the
    daemon gone. Returns when the backfill is no longer requested or at the first problem."""
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus

    last_progress, last_done = time.monotonic(), -1
    while True:
        if problem := daemon_alive():
            return [problem]
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        failed = [r.run_id for r in runs if r.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)]
        if failed:
            return [f"failed runs: {failed}"]
        done = sum(r.status == DagsterRunStatus.SUCCESS for r in runs)
        if done != last_done:
            last_progress, last_done = time.monotonic(), done
        status = instance.get_backfill(backfill_id).status
        if status != BulkActionStatus.REQUESTED and done == len(runs):
            return [] if status == BulkActionStatus.COMPLETED_SUCCESS else [f"backfill ended {status.value}"]
        if time.monotonic() - last_progress > stuck_after_s:
            counts = {s.value: sum(r.status == s for r in runs) for s in DagsterRunStatus}
            return [f"stuck: no run finished for {stuck_after_s:.0f} s; runs {({k: v for k, v in counts.items() if v})}"]
        time.sleep(3)


def time_ui(url: str, shards: int, screenshots: Path, repeats: int = 3) -> dict:
    """Seconds until the asset page and its partitions view show what a person looks for, in a
    fresh browser context each time (nothing cached from the previous load); a page that never
    shows it within 180 s is recorded as such. The last load of each is kept as a screenshot."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright

    # What each shows once loaded: the asset page its launch button and latest materialization's
    # row count;
    # the partitions view the count of partitions (the UI writes 1,000) and of each status.
    pages = {
        "asset_page": ("/assets/face_detections", lambda page: [
            page.get_by_role("button", name="Materialize…"), page.get_by_text("Latest materialization").first,
            page.get_by_text("Row count").first]),
        "partitions_view": ("/assets/face_detections?view=partitions", lambda page: [
            page.get_by_text(f"{shards:,} Partitions"), page.get_by_text("Materialized (").first,
            page.get_by_text("Missing (").first]),
    }  # fmt: skip
    screenshots.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for name, (path, ready) in pages.items():
                seconds = []
                for _ in range(repeats):
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    started = time.monotonic()
                    try:
                        page.goto(f"{url}{path}")
                        for shown in ready(page):
                            expect(shown).to_be_visible(timeout=180_000)
                        seconds.append(time.monotonic() - started)
                    except (AssertionError, PlaywrightError) as error:
                        figures.setdefault("problems", []).append(f"{name}: {str(error).splitlines()[0]}")
                    page.screenshot(path=screenshots / f"{name}.png")
                    (screenshots / f"{name}.txt").write_text(page.inner_text("body"))
                    context.close()
                figures[name] = {"seconds": [round(s, 2) for s in seconds],
                                 "median": round(statistics.median(seconds), 2) if seconds else None}  # fmt: skip
        finally:
            browser.close()
    return figures


def time_sensor(instance, source: Path) -> float:
    """One evaluation of new_shards_sensor over every registered shard, as the daemon ticks it."""
    from dagster import build_sensor_context

    from flip_assets.defs.curation.sensors import new_shards_sensor
    from flip_assets.defs.shards import ShardSource

    started = time.monotonic()
    with build_sensor_context(instance=instance, resources={"shard_source": ShardSource(directory=str(source))}) as context:
        new_shards_sensor(context)
    return time.monotonic() - started


def rehearse(workdir: Path, shards: int, backfill: int, per_shard_runs: int, samples_per_shard: int = 3, detector: str = "yunet",
             ui: bool = True, sensor: bool = True, stuck_after_s: float = 600, ui_repeats: int = 3,
             server: Postgres | None = None, together: bool = False, **monitoring) -> Outcome:  # fmt: skip
    """The whole rehearsal in `workdir` (shards, FLIP_HOME, DAGSTER_HOME, logs); PostgreSQL in a
    temp folder of its own, removed at the end, or a database of its own on `server`, a running
    server the caller owns (the tests share one: initdb and a start cost seconds). together:
    both backfills launched at once (the test: a minute less of waiting for the backfill daemon)."""
    from dagster import AssetKey, DagsterInstance, RunsFilter

    from flip_assets.tools.run_pipeline import register_shards

    bindir = postgres_bin()
    if bindir is None and server is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    outcome = Outcome()
    started = time.monotonic()
    source = workdir / "source"
    names = write_tiny_shards(source, shards, samples_per_shard)
    outcome.figures["write_shards_s"] = round(time.monotonic() - started, 1)
    home = production_home(workdir / "dagster_home", **monitoring)
    postgres, database = (server, "rehearsal") if server else (Postgres(bindir), "dagster")
    saved_env = dict(os.environ)
    try:
        if server is None:
            postgres.init()
            postgres.start()
        postgres.create_database(database)
        outcome.figures["postgres"] = postgres.version()
        os.environ.update(postgres.env(database))  # this process reads the same instance
        # The caller's FLIP_MODELS stays (its default is the resource's); other FLIP_ settings do not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLIP_") or k == "FLIP_MODELS"}
        env |= {
            "DAGSTER_HOME": str(home), "FLIP_HOME": str(workdir / "flip_home"), "FLIP_SOURCE": str(source),
            "FLIP_DETECTOR": detector,
            "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        }  # fmt: skip
        with DagsterInstance.from_config(str(home)) as instance:
            moment = time.monotonic()
            register_shards(instance, source)
            outcome.figures["register_s"] = round(time.monotonic() - moment, 2)
            registered = instance.get_dynamic_partitions("shards")
            if len(registered) != shards:
                outcome.problems.append(f"{len(registered)} partitions registered of {shards}")

            port, log = free_port(), workdir / "dagster_dev.log"
            url = f"http://127.0.0.1:{port}"
            with log.open("w") as out:
                dev = subprocess.Popen(
                    [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(home / "workspace.yaml"),
                     "-h", "127.0.0.1", "-p", str(port)],
                    cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            try:
                moment = time.monotonic()
                wait_for_server(url, dev, log)
                wait_for_code_location(url)
                outcome.figures["dagster_dev_ready_s"] = round(time.monotonic() - moment, 1)
                def daemon_alive() -> str | None:
                    return None if dev.poll() is None else f"dagster dev exited ({dev.returncode})"

                def finish(name: str, chosen: list[str], backfill_id: str) -> list[str]:
                    problems = wait_for_backfill(instance, backfill_id, stuck_after_s, daemon_alive)
                    outcome.problems += [f"{name}: {p}" for p in problems]
                    runs = [r.run_id for r in instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))]
                    outcome.figures[name] = {
                        "shards": len(chosen), "status": instance.get_backfill(backfill_id).status.value,
                        **run_figures(run_timings(instance, runs), len(chosen)),
                    }  # fmt: skip
                    outcome.backfilled += chosen
                    return problems

                # First the runs of one shard each, then the asset backfill on the next shards;
                # together: both launched at once, then awaited in turn (the run queue orders
                # their runs; the backfill daemon, which ticks every 30 s, serves both per tick).
                plan = [("per_shard_backfill", names[:per_shard_runs], True),
                        ("asset_backfill", names[per_shard_runs:per_shard_runs + backfill], False)]  # fmt: skip
                launched = []
                for name, chosen, run_per_shard in plan:
                    if not chosen:
                        continue
                    title = f"rehearsal: {name} of {len(chosen)} of {shards} shards"
                    launched.append((name, chosen, launch_backfill(url, chosen, title, run_per_shard)))
                    if not together and finish(*launched.pop()):
                        break
                for pending in launched:
                    if finish(*pending):
                        break
                for asset in ASSETS:
                    outcome.materialized[asset] = sorted(instance.get_materialized_partitions(AssetKey(asset)))
                if sensor:
                    outcome.figures["new_shards_sensor_tick_s"] = round(time_sensor(instance, source), 2)
                if ui:
                    outcome.figures["ui"] = time_ui(url, shards, workdir / "screenshots", ui_repeats)
                    outcome.problems += [f"ui {p}" for p in outcome.figures["ui"].pop("problems", [])]
            finally:
                interrupt_group(dev, timeout=30)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        if server is None:
            postgres.destroy()
    outcome.figures["total_s"] = round(time.monotonic() - started, 1)
    return outcome


def machine() -> dict:
    import dagster

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    return {
        "cpus": os.cpu_count(), "cpu": model, "load_average": [round(x, 2) for x in os.getloadavg()],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(), "dagster": dagster.__version__, "niceness": os.nice(0),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=1000, help="partitions registered")
    parser.add_argument("--backfill", type=int, default=200, help="shards of the asset backfill (range runs)")
    parser.add_argument("--per-shard-runs", type=int, default=30, help="shards of the job backfill, one run each")
    parser.add_argument("--samples-per-shard", type=int, default=3)
    parser.add_argument("--detector", default="yunet", help="FLIP_DETECTOR of the runs (retinaface: minutes a run)")
    parser.add_argument("--stuck-after", type=float, default=900, help="seconds without a finished run that fail it")
    parser.add_argument("--workdir", type=Path, help="where shards, FLIP_HOME and DAGSTER_HOME go (a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument("--no-ui", dest="ui", action="store_false", help="skip the browser timings")
    args = parser.parse_args()
    if args.backfill + args.per_shard_runs > args.shards:
        parser.error("--backfill plus --per-shard-runs is at most --shards")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="flip-rehearsal-"))
    emit(kind="machine", **machine())
    try:
        outcome = rehearse(workdir, args.shards, args.backfill, args.per_shard_runs, args.samples_per_shard,
                           args.detector, args.ui, stuck_after_s=args.stuck_after)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    figures = outcome.figures
    emit(kind="setup", shards=args.shards, samples_per_shard=args.samples_per_shard, detector=args.detector,
         **{k: figures.get(k) for k in ("postgres", "write_shards_s", "register_s", "dagster_dev_ready_s")})  # fmt: skip
    for name in ("per_shard_backfill", "asset_backfill"):
        if name in figures:
            emit(kind=name, **figures[name])
    emit(kind="sensor", new_shards_sensor_tick_s=figures.get("new_shards_sensor_tick_s"))
    emit(kind="ui", **figures.get("ui", {}))
    missing = {a: len(shards) for a, shards in outcome.not_materialized().items()}
    emit(kind="result", problems=outcome.problems, not_materialized=missing, total_s=figures.get("total_s"),
         load_average=[round(x, 2) for x in os.getloadavg()])  # fmt: skip
    return 1 if outcome.problems or any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
