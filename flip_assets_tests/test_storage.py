"""Atomic asset files: temp files of dead writers are cleaned up, live writers' are not; the data
and the rename reach the disk; files get the umask's permissions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import REPO_ROOT

from flip_assets.core.io import storage

# Starts writing `path`, says so, then hangs mid-write until killed.
HANGING_WRITER = """
import sys, time
from pathlib import Path
from flip_assets.core.io.storage import atomic_write_bytes

def write(tmp):
    tmp.write_bytes(b"half a parquet file")
    print("writing", flush=True)
    time.sleep(600)

atomic_write_bytes(Path(sys.argv[1]), write)
"""


def _start_writer(path):
    writer = subprocess.Popen(
        [sys.executable, "-c", HANGING_WRITER, str(path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
    )
    assert writer.stdout.readline() == b"writing\n"
    return writer


def _tmp_files(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp"))


def test_temp_files_of_dead_writers_are_removed_by_the_next_write_of_that_file(tmp_path):
    path = storage.partition_path(tmp_path, "raw_shards", "00000")
    other = storage.partition_path(tmp_path, "raw_shards", "00001")
    writer = _start_writer(path)
    try:
        [tmp] = _tmp_files(path)
        storage.write_table(path, pa.table({"x": [1]}))
        assert _tmp_files(path) == [tmp]  # a concurrent writer of the same file, still writing
        assert (path.parent / tmp).read_bytes() == b"half a parquet file"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    storage.write_table(other, pa.table({"x": [2]}))
    assert _tmp_files(path) == [tmp]  # only a write of the same file cleans up
    storage.write_table(path, pa.table({"x": [3]}))
    assert _tmp_files(path) == []
    assert pq.read_table(path).column("x").to_pylist() == [3]


# A writer in another container or pod sharing FLIP_HOME: its own host name and pid space (its
# pid is one that cannot exist on this machine, above Linux's largest pid_max).
OTHER_MACHINE_WRITER = """
import os, socket, sys
os.getpid = lambda: 2**22 + 1
socket.gethostname = lambda: "pod-b"
from pathlib import Path
from flip_assets.core.io.storage import atomic_write_bytes

def write(tmp):
    tmp.write_bytes(b"written on pod-b")
    print("writing", flush=True)
    sys.stdin.readline()

atomic_write_bytes(Path(sys.argv[1]), write)
"""


def test_a_writer_on_another_machine_sharing_the_folder_is_not_mistaken_for_a_dead_one(tmp_path):
    path = storage.partition_path(tmp_path, "raw_shards", "00000")
    path.parent.mkdir(parents=True)
    left = path.parent / ".00000.parquet.pod-c.4194305.4e5f6a7b.tmp"  # a killed run's, two hours ago
    left.write_bytes(b"left on pod-c")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(left, (two_hours_ago, two_hours_ago))
    writer = subprocess.Popen(
        [sys.executable, "-c", OTHER_MACHINE_WRITER, str(path)], cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert writer.stdout.readline() == b"writing\n"
        storage.write_table(path, pa.table({"x": [1]}))  # cleans up before writing
        [tmp] = _tmp_files(path)
        assert ".pod-b." in tmp  # pod-b's file kept, pod-c's old one removed
        writer.stdin.write(b"go\n")
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0, "pod-b's write failed: its temp file was removed"
    finally:
        writer.kill()
    assert path.read_bytes() == b"written on pod-b" and _tmp_files(path) == []


def test_old_temp_files_without_a_pid_are_removed(tmp_path):
    """Files named by older code (.<name>.<random>.tmp) carry no pid: stale after an hour."""
    path = storage.partition_path(tmp_path, "raw_shards", "00000")
    path.parent.mkdir(parents=True)
    old, recent = path.parent / ".00000.parquet.k3j_x9a2.tmp", path.parent / ".00000.parquet.q8w7e6r5.tmp"
    old.write_bytes(b"left by a killed run")
    recent.write_bytes(b"maybe still being written")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    storage.write_table(path, pa.table({"x": [1]}))
    assert _tmp_files(path) == [recent.name]


def test_output_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = storage.write_table(storage.partition_path(tmp_path, "raw_shards", "00000"), pa.table({"x": [1]}))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_data_and_rename_are_fsynced_before_the_write_returns(tmp_path, monkeypatch):
    """Spies on os.fsync (the real one still runs): the finished temp file is synced before the
    rename, the folder after it, so a power cut leaves the old file or the whole new one."""
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = storage.write_table(storage.partition_path(tmp_path, "raw_shards", "00000"), pa.table({"x": [1]}))
    [(tmp, size), (folder, _)] = synced
    assert os.path.basename(tmp).startswith(".00000.parquet.") and size == path.stat().st_size > 0
    assert folder == str(path.parent)

