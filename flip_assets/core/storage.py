"""Asset files under FLIP_HOME: one Parquet file per asset partition, written atomically."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import secrets
import socket
import time
from importlib.resources import files
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

UNPARTITIONED = "all"


def partition_path(home: Path, asset_key: str, partition: str | None = None) -> Path:
    return Path(home) / asset_key / f"{partition or UNPARTITIONED}.parquet"


def atomic_write_bytes(path: Path, write) -> Path:
    """Call write(tmp_path), then rename over `path`: readers never see a partial file.

    The data and the rename are fsynced, so a power cut leaves the old or the new file, never
    an empty one. Temp files of writers that died mid-write are removed first (see _remove_stale_tmp).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    tmp = path.parent / f".{path.name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with 0o666 lets the umask decide the mode (mkstemp would force 0600).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return path


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The writer's machine (container, pod) in temp file names: FLIP_HOME may be a volume that
# several share (docker/compose.yaml, deploy/helm), each with pids of its own. No dots, so the
# name splits cleanly.
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"
# A temp file whose writer's pid cannot be judged here (another machine's, or named before the
# pid or the machine was in the name) is stale once untouched this long; writing one file takes
# seconds.
UNJUDGED_TMP_MAX_AGE_S = 3600


def _remove_stale_tmp(path: Path) -> None:
    """Remove `path`'s temp files whose writer is gone.

    A temp file is named .<name>.<host>.<pid>.<random>.tmp; a writer of this machine is gone when
    no process has its pid. A live concurrent writer of the same file always has a live pid, so
    its temp file is never touched; a reused pid only keeps a stale file a while longer. Another
    machine's pids mean nothing here: its temp files are judged by age alone.
    """
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        middle = tmp.name[len(path.name) + 2 : -len(".tmp")].split(".")
        try:
            if len(middle) == 3 and middle[0] == HOST and middle[1].isdigit():
                stale = not pid_alive(int(middle[1]))
            else:
                stale = time.time() - tmp.stat().st_mtime > UNJUDGED_TMP_MAX_AGE_S
            if stale:
                tmp.unlink(missing_ok=True)
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def write_table(path: Path, table: pa.Table) -> Path:
    """Write `table` as Parquet (zstd). An empty table gets no row group at all: pq.write_table
    writes one of 0 rows, which Hugging Face `datasets` takes as its batch size and fails on
    ("BatchSize must be greater than 0"); a file without row groups loads everywhere as 0 rows."""

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, table.schema, compression="zstd") as writer:
            if table.num_rows:
                writer.write_table(table)

    return atomic_write_bytes(path, write)


# A stage writes its new file under .staging/, checks it there, and only then publishes it.
# Neither folder matches the `<asset>/*.parquet` globs that readers of all shards use.
STAGING_DIR, REJECTED_DIR = ".staging", "rejected"


class InputRejected(RuntimeError):
    """An upstream file whose latest materialization failed a blocking check."""


def staging_path(path: Path) -> Path:
    return path.parent / STAGING_DIR / path.name


def rejected_path(path: Path) -> Path:
    return path.parent / REJECTED_DIR / path.name


def rejection_note(path: Path) -> Path:
    return rejected_path(path).with_suffix(".json")


def publish(path: Path, failed_checks: list[str], run_id: str) -> Path:
    """Move the staged file of `path` into place when no blocking check failed, and return it.

    Otherwise move it to rejected/ beside a note naming the checks, and withdraw the file an
    earlier run published: a later, separate run must neither read what the checks refused nor
    go on with data older than it. The note is written first, so a kill part way still refuses.
    """
    staged, note = staging_path(path), rejection_note(path)
    if not failed_checks:
        os.replace(staged, path)
        note.unlink(missing_ok=True)
        rejected_path(path).unlink(missing_ok=True)
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        return path
    note.parent.mkdir(parents=True, exist_ok=True)
    record = json.dumps({"failed_checks": failed_checks, "run_id": run_id})
    atomic_write_bytes(note, lambda tmp: tmp.write_text(record))
    os.replace(staged, rejected_path(path))
    path.unlink(missing_ok=True)
    return rejected_path(path)


def require_file(path: Path) -> Path:
    """An upstream asset's file, or an error saying to materialize that asset first, or that
    its latest materialization failed a blocking check."""
    note = rejection_note(path)
    if note.is_file():
        record = json.loads(note.read_text())
        raise InputRejected(
            f"{path.parent.name} {path.stem}: its latest materialization (run {record['run_id']}) failed the "
            f"blocking check(s) {', '.join(record['failed_checks'])}, so its output was not published "
            f"(kept at {rejected_path(path)}). Fix the cause and materialize {path.parent.name} again."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: materialize the upstream asset first")
    return path


def read_table(path: Path) -> pa.Table:
    return pq.read_table(require_file(path))


def query(sql: str, **params) -> list[dict]:
    """Run SQL on an in-memory DuckDB (it only reads the Parquet files named in params)."""
    con = duckdb.connect(":memory:")
    try:
        cur = con.execute(sql, params or None)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def sql_file(name: str) -> str:
    # Through the package, not the checkout: an installed wheel carries flip_assets/sql/.
    return (files("flip_assets") / "sql" / name).read_text()
