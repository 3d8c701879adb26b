"""Reading img2dataset webdataset shards: NNNNN.tar (KEY.jpg/.txt/.json), NNNNN.parquet, NNNNN_stats.json.

Every input sample becomes one row, whatever is wrong with it. Image bytes stay in the tar:
a row records the member's byte offset and size so later stages read them without untarring.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SHARD_NAME = re.compile(r"^(\d{5,})\.tar$")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

RAW_SHARD_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),
        ("download_status", pa.string()),  # as img2dataset recorded it
        ("download_error", pa.string()),
        ("status", pa.string()),  # ok | failed_to_download | invalid
        ("error", pa.string()),  # why a sample is not ok
        ("notes", pa.string()),  # repairs made to an ok sample, ';'-separated
        ("tar_path", pa.string()),
        ("image_offset", pa.int64()),
        ("image_size", pa.int64()),
    ]
)


def list_shards(source: Path) -> list[str]:
    """Shard names (e.g. '00000') of every NNNNN.tar in the source directory."""
    if not source.is_dir():
        raise FileNotFoundError(f"shard source directory not found: {source} (set FLIP_SOURCE)")
    return sorted(m.group(1) for p in source.iterdir() if (m := SHARD_NAME.match(p.name)))


@dataclass
class _Members:
    image: tuple[int, int] | None = None  # (offset, size)
    caption: bytes | None = None
    meta: bytes | None = None


@dataclass
class TarIndex:
    members: dict[str, _Members] = field(default_factory=dict)
    error: str | None = None  # set when the tar is truncated or corrupt part way


def index_tar(tar_path: Path) -> TarIndex:
    """Offsets of images and contents of captions and metadata, stopping cleanly at damage."""
    index = TarIndex()
    file_size = tar_path.stat().st_size
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for info in tar:
                if not info.isfile() or "." not in info.name:
                    continue
                key, ext = info.name.rsplit("/", 1)[-1].split(".", 1)
                entry = index.members.setdefault(key, _Members())
                if info.offset_data + info.size > file_size:
                    index.error = f"tar truncated inside {info.name}"
                    break
                ext = ext.lower()
                if ext in IMAGE_EXTENSIONS:
                    entry.image = (info.offset_data, info.size)
                elif ext == "txt":
                    entry.caption = tar.extractfile(info).read()
                elif ext == "json":
                    entry.meta = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        index.error = f"tar truncated or corrupt after {len(index.members)} samples: {exc}"
    return index


def _read_parquet_rows(path: Path) -> tuple[dict[str, dict], str | None]:
    if not path.is_file():
        return {}, f"{path.name} missing"
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:
        return {}, f"{path.name} unreadable: {exc}"
    return {str(r["key"]): r for r in rows if r.get("key") is not None}, None


def _as_int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def read_shard(source: Path, shard: str) -> tuple[pa.Table, dict]:
    """One row per input sample (RAW_SHARD_SCHEMA) and a dict of shard-level facts."""
    tar_path = source / f"{shard}.tar"
    if not tar_path.is_file():
        raise FileNotFoundError(f"shard tar not found: {tar_path}")
    parquet_rows, parquet_problem = _read_parquet_rows(source / f"{shard}.parquet")
    index = index_tar(tar_path)
    stats_path = source / f"{shard}_stats.json"
    try:
        stats = json.loads(stats_path.read_text()) if stats_path.is_file() else None
    except (OSError, ValueError):
        stats = None

    rows = []
    for key in sorted(set(parquet_rows) | set(index.members)):
        listed = parquet_rows.get(key, {})
        found = index.members.get(key, _Members())
        notes: list[str] = []
        meta: dict = {}
        if found.meta is not None:
            try:
                meta = json.loads(found.meta.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                notes.append("json_unreadable")
        record = {**listed, **meta}  # the tar's own metadata wins over the parquet row

        caption = None
        if found.caption is not None:
            try:
                caption = found.caption.decode("utf-8")
            except UnicodeDecodeError:
                caption = found.caption.decode("utf-8", errors="replace")
                notes.append("caption_not_utf8")
        elif record.get("caption") is not None and found.image is not None:
            caption = str(record["caption"])
            notes.append("caption_from_metadata")

        download_status = record.get("status") or ("success" if found.image else None)
        status, error = "ok", None
        if download_status not in (None, "success"):
            status, error = "failed_to_download", record.get("error_message") or download_status
        elif found.image is None:
            status = "invalid"
            error = "missing_image" + (f" ({index.error})" if index.error else "")
        elif caption is None:
            status, error = "invalid", "missing_caption"
        elif found.meta is None and not listed:
            status, error = "invalid", "missing_metadata"

        offset, size = found.image if found.image else (None, None)
        rows.append(
            {
                "key": key,
                "url": record.get("url"),
                "caption": caption if caption is not None else record.get("caption"),
                "width": _as_int(record.get("width")),
                "height": _as_int(record.get("height")),
                "sha256": record.get("sha256"),
                "download_status": download_status,
                "download_error": record.get("error_message"),
                "status": status,
                "error": error,
                "notes": ";".join(notes) or None,
                "tar_path": str(tar_path.resolve()),
                "image_offset": offset,
                "image_size": size,
            }
        )
    facts = {"tar_error": index.error, "parquet_problem": parquet_problem, "img2dataset_stats": stats}
    return pa.Table.from_pylist(rows, schema=RAW_SHARD_SCHEMA), facts


def read_image_bytes(tar_path: str, offset: int | None, size: int | None) -> bytes | None:
    if offset is None or size is None:
        return None
    with open(tar_path, "rb") as f:
        f.seek(offset)
        return f.read(size)
