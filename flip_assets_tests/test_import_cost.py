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

import pytest
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


def heavy_libraries_loaded_by(module: str) -> list[str]:
    """The heavy libraries in sys.modules after a fresh interpreter imports `module`."""
    code = (
        f"import {module}, sys, json; "
        f"print(json.dumps([name for name in {list(HEAVY_LIBRARIES)!r} if name in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["flip_assets.definitions", "flip_assets.tools"])
def test_import_loads_no_heavy_library(module):
    assert heavy_libraries_loaded_by(module) == []
