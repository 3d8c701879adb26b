"""The command lines live in flip_assets/tools/ (each answers --help); flip_assets/core/ is
library code only: no module of it parses arguments or runs as a script."""

from __future__ import annotations

import ast

import pytest
from conftest import REPO_ROOT, tool_help

TOOLS = sorted(p.stem for p in (REPO_ROOT / "flip_assets" / "tools").glob("*.py") if p.stem != "__init__")


def test_the_command_lines_are_tools():
    assert {"run_pipeline", "serve_llm", "review_captions", "cross_validate_classifier"} <= set(TOOLS)


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_help(tool):
    done = tool_help(f"flip_assets.tools.{tool}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: ") and f"python -m flip_assets.tools.{tool}" in done.stdout


def test_no_core_module_is_a_script_or_parses_arguments():
    offenders = []
    for path in sorted((REPO_ROOT / "flip_assets" / "core").rglob("*.py")):
        tree = ast.parse(path.read_text())
        imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        main_blocks = [
            n for n in tree.body
            if isinstance(n, ast.If) and "__name__" in ast.unparse(n.test) and "__main__" in ast.unparse(n.test)
        ]  # fmt: skip
        if "argparse" in imports or main_blocks:
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []
