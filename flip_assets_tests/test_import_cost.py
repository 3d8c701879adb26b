"""Loading the code location stays cheap: every Dagster run (and the daemon, and the UI) imports
flip_assets.definitions first, so a heavy library imported at module level is paid once per run
(issue 23: ~60 s per run under load). Heavy libraries are imported inside the functions that use
them; this test imports the definitions in a fresh interpreter and checks none of them came along.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

HEAVY_LIBRARIES = (
    "torch",
    "transformers",
    "gensim",
    "great_expectations",
    "sklearn",
    "cv2",
    "onnxruntime",
    "llama_cpp",
    "matplotlib",
)


TOOLS = sorted(p.stem for p in (REPO_ROOT / "flip_assets" / "tools").glob("*.py") if p.stem != "__init__")
# The code location first, then every command-line tool (python -m flip_assets.tools.<name>).
MODULES = ["flip_assets.definitions", "flip_assets.tools", *(f"flip_assets.tools.{name}" for name in TOOLS)]


def heavy_libraries_loaded_by(modules: list[str]) -> dict[str, list[str]]:
    """module -> the heavy libraries first in sys.modules after it, importing `modules` in turn in
    one fresh interpreter (one start for all: the test stays fast)."""
    code = f"""
import importlib, json, sys
loaded = {{}}
for module in {modules!r}:
    importlib.import_module(module)
    loaded[module] = [n for n in {list(HEAVY_LIBRARIES)!r} if n in sys.modules and not any(n in v for v in loaded.values())]
print(json.dumps(loaded))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_loading_the_definitions_and_tools_imports_no_heavy_library():
    assert len(TOOLS) >= 5  # the glob found the tools
    loaded = heavy_libraries_loaded_by(MODULES)
    assert loaded == {module: [] for module in MODULES}
