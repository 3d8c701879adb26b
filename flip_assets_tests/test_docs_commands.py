"""Every command line the README and docs/ show in a fenced shell block (```bash, ```sh,
```console) runs in a test: the cheap ones here, as written, in a copy of the checkout's layout
(its files linked, the checkout's dagster.yaml copied) that is DAGSTER_HOME, with a temp
FLIP_HOME; the others, which take minutes or a machine we lack (Docker, PostgreSQL, a GPU), in
the test RUN_ELSEWHERE names. A `dagster asset materialize` line of the table still goes through
Dagster's own command up to the run (selection, partitions, backfill policy), and a tool's
options must be ones its --help lists, so a wrong line fails here in seconds. A command line
that is in neither list fails the first test: add it to one, with the test that runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODELS, RAW_SHARDS, REPO_ROOT, tool_help

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|console)\n(.*?)^```", re.S | re.M)
VENV = Path(sys.prefix)  # the venv running the tests: the checkout's .venv in a real one

# Run here as written, in this order (each after the block's `export` lines, as a shell would).
RUN_HERE = [
    "export DAGSTER_HOME=$PWD",
    ".venv/bin/python -m flip_assets.tools.run_pipeline --register-only",
    ".venv/bin/python -m flip_assets.tools.shards list",
    ".venv/bin/dagster asset materialize -m flip_assets.definitions --select raw_shards --partition 00000",
    ".venv/bin/dg launch --assets raw_shards --partition 00000",
]

# Run by another test: the same command line, or (said in the comment) its equivalent.
RUN_ELSEWHERE = {
    # The make targets: `make test` is CI (.ci/run), test-fast and test-e2e its tiers; no test
    # runs `make pipeline` whole (23 minutes). Here every target must exist and run its command.
    "make pipeline": "test_docs_commands.py::test_make_targets_the_docs_name_exist",
    "make test": "test_docs_commands.py::test_make_targets_the_docs_name_exist",
    "make test-fast": "test_docs_commands.py::test_make_targets_the_docs_name_exist",
    "make test-e2e": "test_docs_commands.py::test_make_targets_the_docs_name_exist",
    # The same command line, with 00000...00001 and dg's -m.
    ".venv/bin/dagster asset materialize -m flip_assets.definitions --select raw_shards,face_detections --partition-range 00000...00001":
        "test_cli.py::test_a_range_of_partitions_in_one_run_and_through_dg_launch",
    # Equivalent: the range mechanics on two stages over two shards (test_cli), every curation
    # stage over the sample shards in the session fixtures (conftest, in process, per shard).
    ".venv/bin/dagster asset materialize -m flip_assets.definitions --select 'group:curation' --partition-range 00000...00009":
        "test_cli.py::test_a_range_of_partitions_in_one_run_and_through_dg_launch",
    ".venv/bin/dg list defs": "test_project.py::test_dg_lists_the_definitions",  # with --json
    # The same subcommands on a real temporary instance (a registered shard, then removed).
    ".venv/bin/python -m flip_assets.tools.shards add": "test_shards_tool.py::test_add_list_and_remove_shards",
    ".venv/bin/python -m flip_assets.tools.shards remove 00012 --force": "test_shards_tool.py::test_add_list_and_remove_shards",
    "FLIP_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest flip_assets_tests/test_graph_snapshot.py":
        "test_graph_snapshot.py::test_asset_graph_matches_the_snapshot",
    # Equivalent: main() on 120 labelled captions and 2 folds instead of the corpus (12 minutes).
    ".venv/bin/python -m flip_assets.tools.cross_validate_classifier --corpus ../shared/data/laion/*.parquet --eval-dir ../shared/data/eval":
        "test_caption_cross_validation.py::test_every_labelled_caption_is_scored_by_a_model_that_held_it_out",
    # No Docker here: the Dockerfile, compose file and instance are checked statically.
    "docker build -f docker/Dockerfile -t flip-platform:0.1.0 .": "test_deployment.py::test_dockerfile_installs_the_wheel_the_packaging_test_builds",
    "FLIP_SHARED_DIR=$(realpath ../shared) DAGSTER_POSTGRES_PASSWORD=change-me docker compose -f docker/compose.yaml up":
        "test_deployment.py::test_compose_matches_the_instance_the_daemon_runs",
    # Equivalent: deploy/dagster.postgres.yaml on a real PostgreSQL, its daemon and run queue.
    "export DAGSTER_HOME=/srv/flip/dagster && mkdir -p $DAGSTER_HOME && cp deploy/dagster.postgres.yaml $DAGSTER_HOME/dagster.yaml":
        "test_postgres_instance.py::test_a_backfill_survives_a_killed_run_and_a_postgres_restart",
    "export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=5432 DAGSTER_PG_USER=flip DAGSTER_PG_PASSWORD=... DAGSTER_PG_DB=dagster":
        "test_postgres_instance.py::test_a_backfill_survives_a_killed_run_and_a_postgres_restart",
    ".venv/bin/dagster-daemon run -w workspace.yaml &": "test_postgres_instance.py::test_a_backfill_survives_a_killed_run_and_a_postgres_restart",
    # Equivalent: the webserver of `dagster dev`, on the checkout's SQLite instance.
    ".venv/bin/dagster-webserver -w workspace.yaml -h 127.0.0.1 -p 3000 &": "test_ui_browser.py::test_launch_face_detections_for_one_shard_from_the_ui",
    # An s3:// FLIP_HOME on moto's S3 server, with its endpoint and credentials.
    "export FLIP_HOME=s3://flip-outputs/flip": "test_object_store.py::test_stages_publish_to_s3_what_they_publish_to_a_folder",
    "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=eu-west-1": "test_object_store.py::test_stages_publish_to_s3_what_they_publish_to_a_folder",
    "export FLIP_S3_ENDPOINT=http://127.0.0.1:9000": "test_object_store.py::test_stages_publish_to_s3_what_they_publish_to_a_folder",
    "export FLIP_LOCAL_CACHE=/var/tmp/flip-cache": "test_object_store.py::test_a_checkpoint_trained_on_the_store_resumes_and_is_evaluated_on_other_machines",
    # Equivalent: the same assets in process on the sample shards' release.
    ".venv/bin/dagster asset materialize -m flip_assets.definitions --select release_index --partition 00000": "test_release.py::test_release_of_the_sample_shards",
    ".venv/bin/dagster asset materialize -m flip_assets.definitions --select flip_release,release_exclusions --partition 00000":
        "test_release.py::test_release_of_the_sample_shards",
    ".venv/bin/dagster asset materialize -m flip_assets.definitions --select celeba_caption_pairs,released_pairs,raw_shard_pairs,flip_checkpoint,flip_eval_tables,flip_ablation":
        "test_training_assets.py::test_pairs_checkpoint_tables_and_ablation_materialize_with_passing_checks",
    # Equivalent: the same assets with small settings (the larger ones only scale seeds, steps and images).
    "FLIP_TRAIN_SEEDS=10 FLIP_EVAL_TRAIN_IMAGES=0 .venv/bin/dagster asset materialize -m flip_assets.definitions --select celeba_caption_pairs,flip_checkpoint,flip_eval_tables":
        "test_training_assets.py::test_pairs_checkpoint_tables_and_ablation_materialize_with_passing_checks",
    "FLIP_ABLATION_SEEDS=0,1,2,3,4,5,6,7,8,9 FLIP_ABLATION_STEPS=60 FLIP_ABLATION_TEST_IMAGES=0 .venv/bin/dagster asset materialize -m flip_assets.definitions --select flip_ablation":
        "test_training_assets.py::test_pairs_checkpoint_tables_and_ablation_materialize_with_passing_checks",
    # Equivalent: ViT-B/32 (not B/16) trained on CUDA in bf16, outside Dagster; a gpu test.
    "FLIP_TRAIN_CONFIG=clip_vit_b16 FLIP_DEVICE=cuda .venv/bin/dagster asset materialize -m flip_assets.definitions --select flip_checkpoint":
        "test_gpu.py::test_clip_vit_b32_trains_on_cuda_in_bf16_resumes_and_reloads_on_the_cpu",
}  # fmt: skip


def command_lines(text: str) -> list[str]:
    """The command lines of a Markdown text's shell blocks: continuations joined, a console
    block's `$ ` lines only, comments and blank lines left out."""
    commands = []
    for block in SHELL_BLOCK.findall(text):
        console = any(line.startswith("$ ") for line in block.splitlines())
        for line in block.replace("\\\n", " ").splitlines():
            if console:
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def doc_commands() -> dict[str, list[str]]:
    """Each command line -> the doc files that show it."""
    found: dict[str, list[str]] = {}
    for path in DOCS:
        for command in command_lines(path.read_text()):
            found.setdefault(command, []).append(str(path.relative_to(REPO_ROOT)))
    return found


def test_every_command_in_the_docs_is_run_here_or_where_the_table_says():
    shown = doc_commands()
    unrun = {c: files for c, files in shown.items() if c not in RUN_HERE and c not in RUN_ELSEWHERE}
    assert not unrun, f"command lines no test runs (add each to RUN_HERE or RUN_ELSEWHERE): {unrun}"
    stale = [c for c in [*RUN_HERE, *RUN_ELSEWHERE] if c not in shown]
    assert not stale, f"listed here but shown in no doc any more: {stale}"


def test_command_lines_are_read_from_shell_blocks_only():
    text = "```bash\nmake a   # why\n# a comment\nmake b \\\n  --x\n```\n```python\nimport os\n```\n```console\n$ make c\noutput\n```\n"
    assert command_lines(text) == ["make a", "make b    --x", "make c"]


def test_the_tests_named_for_the_other_commands_exist():
    missing = []
    for command, where in RUN_ELSEWHERE.items():
        file, name = where.split("::")
        path = Path(__file__).parent / file
        if not path.is_file() or not re.search(rf"^def {re.escape(name)}\(", path.read_text(), re.M):
            missing.append(f"{where} (for {command})")
    assert not missing, missing


def where_things_live_paths() -> list[str]:
    """Every `path` in the first column of the README's "Where things live" table."""
    section = (REPO_ROOT / "README.md").read_text().split("## Where things live", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return [path for cell in rows for path in re.findall(r"`([^`]+)`", cell)]


def test_every_path_in_the_where_things_live_map_exists():
    paths = where_things_live_paths()
    assert len(paths) >= 20
    assert [p for p in paths if not (REPO_ROOT / p).exists()] == []


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A folder laid out as the checkout (its top-level files and folders linked, `.venv` the
    test's venv) with the checkout's dagster.yaml, so that `DAGSTER_HOME=$PWD` there is a temp
    instance and its storage paths (relative to the working directory) land inside it."""
    root = tmp_path_factory.mktemp("checkout")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in {".git", ".venv", ".flip_home", "dagster.yaml"}:
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(VENV)
    shutil.copy(REPO_ROOT / "dagster.yaml", root / "dagster.yaml")
    return root


def shell_env(checkout: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DAGSTER_HOME", "FLIP_HOME"}}
    return {
        **env, "FLIP_HOME": str(checkout.parent / f"{checkout.name}_flip_home"), "FLIP_SOURCE": str(RAW_SHARDS),
        "FLIP_MODELS": str(MODELS), "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }  # fmt: skip


def start_as_written(checkout: Path, command: str) -> subprocess.Popen:
    script = "\n".join([*(c for c in RUN_HERE if c.startswith("export ")), command])
    return subprocess.Popen(["bash", "-ec", script], cwd=checkout, env=shell_env(checkout), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# Only reads the instance: it runs beside the command after it (each command starts Python and
# imports Dagster, seconds on two cores; test_cli.py's cli_at_once alike).
READ_ONLY = ".venv/bin/python -m flip_assets.tools.shards list"


def runs_of(checkout: Path, asset: str) -> list[str]:
    """The partitions of the asset's materializations in the temp checkout's instance."""
    from dagster import AssetKey, DagsterInstance

    cwd = os.getcwd()
    os.chdir(checkout)  # dagster.yaml's paths are relative to the working directory
    try:
        with DagsterInstance.from_config(str(checkout)) as instance:
            return sorted(r.partition_key for r in instance.fetch_materializations(AssetKey(asset), limit=10).records)
    finally:
        os.chdir(cwd)


@pytest.mark.slow
@pytest.mark.e2e
def test_the_cheap_commands_run_as_written(checkout):
    shards = sorted(p.stem for p in RAW_SHARDS.glob("*.tar"))
    assert READ_ONLY in RUN_HERE
    running = {}
    for command in RUN_HERE:
        if command.startswith("export "):
            continue  # the prelude of every command below
        running[command] = start_as_written(checkout, command)
        if command == READ_ONLY:
            continue
        for started, process in running.items():
            done = finished(process)
            assert done.returncode == 0, f"{started}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            if "--register-only" in started:
                assert f"shards: {', '.join(shards)}" in done.stdout, done.stdout
            elif "shards list" in started:
                assert all(shard in done.stdout for shard in shards), done.stdout
        running = {}
    # Both runs went to the instance in the temp checkout (DAGSTER_HOME=$PWD), the files to FLIP_HOME.
    # `--select raw_shards` ran that stage alone (test_cli.py runs the range and dg's range).
    assert runs_of(checkout, "raw_shards") == ["00000", "00000"] and runs_of(checkout, "face_detections") == []
    assert (Path(shell_env(checkout)["FLIP_HOME"]) / "raw_shards" / "00000.parquet").is_file()


def materialize_args(command: str) -> tuple[dict[str, str], list[str]] | None:
    """(leading VAR=value assignments, the arguments after `dagster asset materialize`)."""
    import shlex

    words = shlex.split(command)
    assignments = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        assignments[name] = value
    if words[:3] != [".venv/bin/dagster", "asset", "materialize"]:
        return None
    return assignments, words[3:]


@pytest.mark.slow
def test_materialize_lines_run_elsewhere_pass_dagsters_own_checks(checkout, monkeypatch):
    """Each such line through Dagster's own `asset materialize` command, on an instance with the
    sample shards registered, stopped where the run would start: the selection exists, its
    partitions are known, and a range meets the single-run backfill policy."""
    import dagster._cli.asset as asset_cli_module
    from click.testing import CliRunner
    from dagster import DagsterInstance

    from flip_assets.defs.shards import shard_partitions

    monkeypatch.chdir(checkout)
    monkeypatch.setenv("DAGSTER_HOME", str(checkout))
    with DagsterInstance.get() as instance:  # the sample shards as partitions, as the main command adds them
        known = set(instance.get_dynamic_partitions(shard_partitions.name))
        instance.add_dynamic_partitions(shard_partitions.name, [p.stem for p in sorted(RAW_SHARDS.glob("*.tar")) if p.stem not in known])
    started = []
    monkeypatch.setattr(asset_cli_module, "execute_job", lambda **kwargs: started.append(kwargs) or DryRun())
    lines = [c for c in RUN_ELSEWHERE if materialize_args(c)]
    assert len(lines) >= 6
    failed = {}
    for command in lines:
        assignments, args = materialize_args(command)
        with monkeypatch.context() as env:
            for name, value in assignments.items():
                env.setenv(name, value)
            before = len(started)
            result = CliRunner().invoke(asset_cli_module.asset_cli, ["materialize", *args])
        if result.exit_code != 0:
            failed[command] = str(result.exception or result.output)[-600:]
        elif not started[before]["asset_selection"]:
            failed[command] = "selects no asset"  # an unknown group resolves to nothing
    assert not failed, failed
    assert len(started) == len(lines)


class DryRun:
    success = True


def tool_options(command: str) -> tuple[str, list[str]] | None:
    """(module, its --options) of a `python -m flip_assets.tools...` line."""
    match = re.search(r"python -m (flip_assets\.tools\.\w+)(.*)$", command)
    return (match[1], re.findall(r"(--[a-z][a-z0-9-]*)", match[2])) if match else None


@pytest.mark.slow
def test_tool_options_in_the_docs_are_the_tools_own():
    tools = {}
    for command in doc_commands():
        if found := tool_options(command):
            tools.setdefault(found[0], set()).update(found[1])
    assert "flip_assets.tools.run_pipeline" in tools
    for module, options in tools.items():
        helped = tool_help(module)  # the run test_tools.py checked, when it ran first
        assert helped.returncode == 0, f"{module} --help: {helped.stderr[-2000:]}"
        assert not [o for o in options if o not in helped.stdout], f"{module}: options the docs use that --help does not list"


def test_make_targets_the_docs_name_exist():
    targets = sorted({c.split()[1] for c in doc_commands() if c.startswith("make ")})
    assert {"pipeline", "test"} <= set(targets)
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"
    pipeline = subprocess.run(["make", "-n", "pipeline"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "-m flip_assets.tools.run_pipeline" in pipeline, pipeline


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#+ (.+)$", SHELL_BLOCK.sub("", path.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_between_the_docs_leads_somewhere():
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked)):
                broken.append(f"{path.name}: {target}")
    assert not broken, broken
