"""The project as a package and a dg project: import cost, package data, executors, the dg CLI."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

HEAVY = {"dagster", "torch", "great_expectations"}


def packages_loaded_by(module: str) -> set[str]:
    """Top-level packages a fresh interpreter holds after importing `module` (run in the
    checkout, so this tree's flip_assets is the one imported)."""
    script = f"import sys, {module}; print(' '.join({{m.split('.')[0] for m in sys.modules}}))"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("module", ["flip_assets.core", "flip_assets.core.curation.captions", "flip_assets.core.curation.precleaning"])
def test_plain_logic_imports_without_dagster_torch_or_great_expectations(module):
    heavy = packages_loaded_by(module) & HEAVY
    assert not heavy, f"importing {module} loads {sorted(heavy)}"


def test_jobs_run_their_steps_in_one_process():
    from flip_assets.definitions import defs

    for job in (defs.resolve_job_def("shard_pipeline"), defs.resolve_implicit_global_asset_job_def()):
        assert job.executor_def.name == "in_process", job.name


INSTALLED_CHECK = """
import sys
from importlib.resources import files
from pathlib import Path

import flip_assets
from flip_assets.core.curation.keywords import load_review
from flip_assets.core.io.storage import sql_file
from flip_assets.definitions import defs
from flip_assets.tools import run_pipeline  # the command lines ship too

site, checkout_sql = Path(sys.argv[1]), sys.argv[2].split(",")
assert Path(flip_assets.__file__).resolve().is_relative_to(site), flip_assets.__file__
assert "raw_shards" in {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
assert sorted(p.name for p in files("flip_assets").joinpath("sql").iterdir()) == checkout_sql
assert "select" in sql_file("raw_shards_summary.sql").lower()
review = Path(defs.resources["keyword_mining"].review_file)
assert review.resolve().is_relative_to(site), review
assert load_review(review)
caption_training = defs.resources["caption_training"]
for name in ("review_file", "training_labels"):  # the classifier's labels, read from the package
    assert Path(getattr(caption_training, name)).is_file(), (name, getattr(caption_training, name))
print("installed package ok")
"""


@pytest.mark.slow
def test_wheel_loads_definitions_and_package_data_outside_the_checkout(tmp_path):
    # The script docker/Dockerfile builds the image's wheel with.
    built = subprocess.run(
        [sys.executable, REPO_ROOT / "deploy" / "build_wheel.py", tmp_path / "dist"], check=True, capture_output=True, text=True
    )
    wheel = Path(built.stdout.strip())
    assert wheel.parent == tmp_path / "dist", built.stdout
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", site, wheel], check=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIP_")}
    env |= {"PYTHONPATH": str(site), "FLIP_HOME": str(tmp_path / "flip")}
    checkout_sql = ",".join(sorted(p.name for p in (REPO_ROOT / "sql").glob("*.sql")))
    done = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK, str(site.resolve()), checkout_sql],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "installed package ok" in done.stdout


@pytest.mark.slow
def test_dg_lists_the_definitions(tmp_path):
    dg = Path(sys.executable).parent / "dg"
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run([str(dg), "list", "defs", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout)
    assert {"raw_shards", "aigc_samples"} <= {a["asset_key"] for a in listed["assets"]}
    assert "shard_pipeline" in {j["name"] for j in listed["jobs"]}


def test_dg_does_not_warn_about_the_project_virtual_environment(tmp_path):
    """The README runs `.venv/bin/dg ...` without activating .venv; dg compares only
    $VIRTUAL_ENV with the project's .venv and warned on every command (pyproject.toml's
    [tool.dg.cli] suppress_warnings). A project folder: this pyproject.toml beside a .venv."""
    dg = Path(sys.executable).parent / "dg"
    (tmp_path / "pyproject.toml").write_text((REPO_ROOT / "pyproject.toml").read_text())
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run([str(dg), "list", "projects"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "virtual environment" not in done.stderr, done.stderr


def _is_sql_file_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "sql_file"


def test_queries_live_only_in_the_top_level_sql_folder():
    """sql/ is the one home of the DuckDB queries: every storage.query reads its SQL with
    sql_file, whose every name is a file of sql/, and the package holds no copy of the folder."""
    from flip_assets.core.io.storage import sql_file

    assert not (REPO_ROOT / "flip_assets" / "sql").exists(), "the queries moved to sql/"
    inline, missing = [], []
    for path in sorted((REPO_ROOT / "flip_assets").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name == "query" and getattr(node.func, "value", None) is not None and getattr(node.func.value, "id", None) == "storage":
                if not (node.args and _is_sql_file_call(node.args[0])):
                    inline.append(where)
            if _is_sql_file_call(node) and isinstance(node.args[0], ast.Constant):
                if not (REPO_ROOT / "sql" / node.args[0].value).is_file():
                    missing.append(f"{where} {node.args[0].value}")
    assert inline == [], "queries written inline instead of in sql/"
    assert missing == []
    assert sql_file("raw_shards_summary.sql") == (REPO_ROOT / "sql" / "raw_shards_summary.sql").read_text()
