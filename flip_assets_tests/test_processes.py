"""Process liveness (core/io/processes.py), as the storage's stale temp files and the run
launcher's health check ask it: a running process, one that exited and a zombie."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from flip_assets.core.io.processes import pid_alive


def test_a_running_process_is_alive_an_exited_or_zombie_one_is_not():
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    # Exited but not yet reaped: a zombie, which the launcher must see as dead.
    while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)
