"""Asset files under FLIP_HOME: one Parquet file per asset partition, written atomically."""

from __future__ import annotations

import os
import tempfile
from importlib.resources import files
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

UNPARTITIONED = "all"


def partition_path(home: Path, asset_key: str, partition: str | None = None) -> Path:
    return Path(home) / asset_key / f"{partition or UNPARTITIONED}.parquet"


def atomic_write_bytes(path: Path, write) -> Path:
    """Call write(tmp_path), then rename over `path`: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_table(path: Path, table: pa.Table) -> Path:
    return atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def require_file(path: Path) -> Path:
    """An upstream asset's file, or an error saying to materialize that asset first."""
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
