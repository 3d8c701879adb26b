"""Build the flip-assets wheel: the one the packaging test installs and docker/Dockerfile installs.

Built from a copy of the package, sql/ and pyproject.toml only: setuptools reuses build/ in a source
tree, which may hold stale modules. Offline (no build isolation): needs setuptools >= 70.1.
Usage: python deploy/build_wheel.py OUT_DIR   (prints the wheel's path)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_wheel(out_dir: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for package_dir in ("flip_assets", "sql"):  # sql/ ships as flip_assets/sql (pyproject's package-dir)
            shutil.copytree(REPO_ROOT / package_dir, src / package_dir, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO_ROOT / "pyproject.toml", src)
        pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out_dir), str(src)], check=True)
    (wheel,) = Path(out_dir).glob("flip_assets-*.whl")
    return wheel


if __name__ == "__main__":
    print(build_wheel(Path(sys.argv[1])))
