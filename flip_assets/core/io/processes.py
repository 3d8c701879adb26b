"""Process liveness on this machine: whether a writer or a run's worker still runs."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine. A killed process its parent has
    not reaped yet (a zombie: a run worker under Dagster's code server) is not alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    try:
        # /proc/<pid>/stat: "pid (name) state ...", the name may hold spaces or parentheses.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:  # gone meanwhile (or no /proc: then os.kill's answer stands)
        return not Path("/proc/self/stat").exists()
    except (OSError, IndexError):
        return True


def interrupt_group(process, timeout: float) -> None:
    """Ctrl-C, as in a terminal, to a process started in its own group (start_new_session) and
    all its children (dagster dev: webserver, daemon, code server, run workers); SIGKILL to the
    group if it has not ended within timeout seconds."""
    import signal
    import subprocess

    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
