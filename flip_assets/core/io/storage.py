"""Asset files under FLIP_HOME: one Parquet file per asset partition, written atomically."""

from __future__ import annotations

import fcntl
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

from flip_assets.core.io.processes import pid_alive

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


# The key of a column's description in its Arrow field metadata: a Parquet file written from a
# schema with descriptions keeps them (in the Arrow schema of its footer), and the UI shows them.
DESCRIPTION = b"description"


def described(name: str, kind: pa.DataType, description: str) -> pa.Field:
    """A column of a schema, with its description."""
    return pa.field(name, kind, metadata={DESCRIPTION: description})


def column_description(field: pa.Field) -> str | None:
    return (field.metadata or {}).get(DESCRIPTION, b"").decode() or None


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
# Locks of the partitions being written, and the journals of files published together.
LOCKS_DIR, COMMITS_DIR = ".locks", ".commits"


class InputRejected(RuntimeError):
    """An upstream file whose latest materialization failed a blocking check."""


class PartitionBusy(RuntimeError):
    """Another run holds the partition: a second run of it is refused, never interleaved."""


def staging_path(path: Path, token: str) -> Path:
    """A run's own staged file of `path` (token: its run id): two runs of one partition never
    write, check or publish each other's file."""
    return path.parent / STAGING_DIR / f"{path.stem}.{token}{path.suffix}"


def staged_files(path: Path) -> list[Path]:
    """Every run's staged file of `path` (a run that did not finish leaves one)."""
    return sorted((path.parent / STAGING_DIR).glob(f"{glob.escape(path.stem)}.*{path.suffix}"))


def rejected_path(path: Path) -> Path:
    return path.parent / REJECTED_DIR / path.name


def rejection_note(path: Path) -> Path:
    return rejected_path(path).with_suffix(".json")


class PartitionLock:
    """The right to stage and publish one asset file, held by one run at a time.

    An exclusive flock on <asset>/.locks/<partition>.lock: the kernel releases it when its
    process ends, killed or not, so a dead run never keeps a partition locked and there is no
    staleness to guess. Shared folders (NFS) carry flock as a POSIX lock across machines. The
    file holds the holder's run id, machine and pid, for the message that refuses another run.
    """

    def __init__(self, path: Path, run_id: str):
        self.path, self.run_id = path.parent / LOCKS_DIR / f"{path.name}.lock", run_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace")
            os.close(fd)
            raise PartitionBusy(_busy_message(path, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"run_id": run_id, "host": HOST, "pid": os.getpid(), "since": time.time()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _busy_message(path: Path, holder: str) -> str:
    try:
        record = json.loads(holder)
        who = f"run {record['run_id']} (machine {record['host']}, pid {record['pid']}, since {time.ctime(record['since'])})"
    except (ValueError, KeyError, TypeError):
        who = "another run"
    return (
        f"{path.parent.name} {path.stem} is being materialized by {who}: a second run of the same partition "
        f"is refused so that neither publishes the other's file. Materialize it again once that run has ended."
    )


def publish(path: Path, staged: Path, failed_checks: list[str], run_id: str) -> Path:
    """Move the run's staged file into place at `path` when no blocking check failed, and return it.

    Otherwise move it to rejected/ beside a note naming the checks, and withdraw the file an
    earlier run published: a later, separate run must neither read what the checks refused nor
    go on with data older than it. The note is written first, so a kill part way still refuses.
    Done again with the same arguments (a journal's recovery), it finishes what is left.
    """
    note = rejection_note(path)
    if not failed_checks:
        _replace_once(staged, path)
        note.unlink(missing_ok=True)
        rejected_path(path).unlink(missing_ok=True)
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        return path
    note.parent.mkdir(parents=True, exist_ok=True)
    record = json.dumps({"failed_checks": failed_checks, "run_id": run_id})
    atomic_write_bytes(note, lambda tmp: tmp.write_text(record))
    _replace_once(staged, rejected_path(path))
    path.unlink(missing_ok=True)
    return rejected_path(path)


def _replace_once(staged: Path, target: Path) -> None:
    """Put a staged file in place; a staged file already gone was put there before (a journal
    rolled forward by a reader): nothing is left to do."""
    try:
        os.replace(staged, target)
    except FileNotFoundError:
        if not target.is_file():
            raise


def publish_together(files: list[tuple[Path, Path]], failed_checks: list[str], run_id: str) -> list[Path]:
    """Publish several (path, staged) files as one: all of them, or, when a blocking check
    failed, none. A journal naming every file is written into each file's folder first, so a
    run killed part way is completed by the next reader of any of them (recover_commits) before
    it reads: nobody sees one file of the set without the others. Returns where each file went."""
    journals = write_journals(files, failed_checks, run_id)
    out = [publish(path, staged, failed_checks, run_id) for path, staged in files]
    remove_journals(journals)
    return out


def write_journals(files: list[tuple[Path, Path]], failed_checks: list[str], run_id: str) -> list[Path]:
    """The journal of a publication of several files, in each file's folder; none for one file
    (one rename is atomic already)."""
    if len(files) < 2:
        return []
    journal = json.dumps({
        "run_id": run_id, "failed_checks": failed_checks,
        "files": [[_home_relative(path), _home_relative(staged)] for path, staged in files],
    })  # fmt: skip
    journals = [journal_path(path) for path, _ in files]
    for path in journals:
        atomic_write_bytes(path, lambda tmp: tmp.write_text(journal))
    return journals


def remove_journals(journals: list[Path]) -> None:
    for path in journals:
        path.unlink(missing_ok=True)


def read_journal(journal: Path, home: Path) -> tuple[list[tuple[Path, Path]], list[str], str]:
    """(files, failed_checks, run_id) of a journal, with the files' paths under `home`."""
    record = json.loads(journal.read_text())
    return [(home / rel, home / staged) for rel, staged in record["files"]], record["failed_checks"], record["run_id"]


def journal_path(path: Path) -> Path:
    return path.parent / COMMITS_DIR / f"{path.stem}.json"


def _home_relative(path: Path) -> str:
    # <home>/<asset>/[.staging/]<file>: relative to home, so a folder mounted elsewhere still reads.
    return path.relative_to(path.parents[2] if path.parent.name == STAGING_DIR else path.parents[1]).as_posix()


def recover_commits(path: Path) -> None:
    """Finish a publication of several files that a killed run left part way (a journal beside
    `path`, or beside any file of the folder when `path` is a glob), so that the reader that
    follows sees all of its files or none."""
    folder = path.parent / COMMITS_DIR
    pattern = "*.json" if glob.has_magic(path.name) else f"{glob.escape(path.stem)}.json"
    for journal in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        try:
            files, failed_checks, run_id = read_journal(journal, path.parents[1])
        except FileNotFoundError:  # finished by another reader meanwhile
            continue
        for target, staged in files:
            if staged.is_file():  # else it was put in place before the kill
                publish(target, staged, failed_checks, run_id)
        remove_journals([journal_path(target) for target, _ in files])


def partition_files(pattern: Path) -> dict[str, Path]:
    """The published partition files of an asset by partition key; `pattern` is its
    `<asset>/*.parquet` glob (staged and refused files are in subfolders, so not matched)."""
    return {p.stem: p for p in sorted(pattern.parent.glob(pattern.name)) if p.stem != UNPARTITIONED}


def require_file(path: Path) -> Path:
    """An upstream asset's file, or an error saying to materialize that asset first, or that
    its latest materialization failed a blocking check."""
    recover_commits(path)
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


def footer_fingerprint(path: Path) -> str:
    """Size and a hash of a Parquet file's footer (schema, row groups, column chunk sizes and
    statistics): read in two small reads whatever the file's size, the same for the same bytes
    rewritten or copied (a moved FLIP_HOME, an object store), different when the content changes
    (a change keeping every chunk's size and statistics would pass unseen; the asset's data
    version, a hash of the whole file, still marks what read it Unsynced in Dagster).
    "missing" or "unreadable" (a half-written file has no footer) instead."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            if size < 12:
                return "unreadable"
            handle.seek(size - 8)
            tail = handle.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or length > size - 12:
                return "unreadable"
            handle.seek(size - 8 - length)
            footer = handle.read(length)
    except FileNotFoundError:
        return "missing"
    return f"{size}:{hashlib.sha256(footer).hexdigest()[:16]}"


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


def query_table(sql: str, **params) -> pa.Table:
    """query, as an Arrow table: for results too large for a list of dicts."""
    con = duckdb.connect(":memory:")
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    finally:
        con.close()


def sql_file(name: str) -> str:
    # sql/ at the top of the checkout is the one home of the queries. pyproject.toml maps the
    # package flip_assets.sql onto it, so a wheel (and the image) carries them as flip_assets/sql/;
    # a checkout, on PYTHONPATH or installed editable, has no such folder and reads sql/ itself.
    packaged = files("flip_assets") / "sql"
    folder = packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "sql"
    return (folder / name).read_text()
