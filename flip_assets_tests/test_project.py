"""The project as a package: import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

HEAVY = {"dagster", "torch", "great_expectations"}


def packages_loaded_by(module: str) -> set[str]:
    """Top-level packages a fresh interpreter holds after importing `module` (run in the
    checkout, so this tree's flip_assets is the one imported)."""
    script = f"import sys, {module}; print(' '.join({{m.split('.')[0] for m in sys.modules}}))"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("module", ["flip_assets.core", "flip_assets.core.captions", "flip_assets.core.precleaning"])
def test_plain_logic_imports_without_dagster_torch_or_great_expectations(module):
    heavy = packages_loaded_by(module) & HEAVY
    assert not heavy, f"importing {module} loads {sorted(heavy)}"
