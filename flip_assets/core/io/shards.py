"""Reading img2dataset webdataset shards: NNNNN.tar (KEY.jpg/.txt/.json), NNNNN.parquet, NNNNN_stats.json.

Every input sample becomes one row, whatever is wrong with it. Image bytes stay in the tar:
a row records the member's byte offset and size so later stages read them without untarring.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flip_assets.core.io.storage import sha256_of

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
        ("image_sha256", pa.string()),  # of the tar member's bytes (the `sha256` field hashes the source file)
    ]
)


# The command that lists, registers and removes shards (flip_assets/tools/shards.py); messages name it.
SHARDS_COMMAND = "python -m flip_assets.tools.shards"
# Up to this many registered shards are named one by one in a message; more as first...last.
_NAMED_SHARDS = 6


def registered_shards_text(registered: list[str]) -> str:
    """The registered shards for a message: each one when few, else their count and range."""
    shards = sorted(registered)
    if not shards:
        return "no shard is registered yet"
    if len(shards) <= _NAMED_SHARDS:
        return f"registered: {', '.join(shards)}"
    return f"{len(shards)} registered, {shards[0]}...{shards[-1]}"


def unknown_shard_message(shard: str, registered: list[str]) -> str:
    """For a shard named (on the command line, in a run request) that is not a partition."""
    return (
        f"no shard {shard!r} ({registered_shards_text(registered)}). A shard is registered from its "
        f"NNNNN.tar in FLIP_SOURCE: `{SHARDS_COMMAND} add` (the new_shards_sensor does it under "
        f"`dagster dev`); `{SHARDS_COMMAND} list` lists them."
    )


def list_shards(source: Path) -> list[str]:
    """Shard names (e.g. '00000') of every NNNNN.tar file in the source directory. A folder or a
    dangling link with such a name is not a shard; a link to a file is."""
    if not source.is_dir():
        raise FileNotFoundError(f"shard source directory not found: {source} (set FLIP_SOURCE)")
    return sorted(m.group(1) for p in source.iterdir() if (m := SHARD_NAME.match(p.name)) and p.is_file())


@dataclass
class _Members:
    """One copy of a sample in the tar: the members that belong to it."""

    image: tuple[int, int] | None = None  # (offset, size)
    image_sha256: str | None = None
    caption: bytes | None = None
    meta: bytes | None = None

    def complete(self) -> bool:
        return self.image is not None and self.caption is not None and self.meta is not None


_MEMBER_FIELD = {**{ext: "image" for ext in IMAGE_EXTENSIONS}, "txt": "caption", "json": "meta"}


@dataclass
class TarIndex:
    # key -> its copies in tar order; more than one is a duplicate key
    copies: dict[str, list[_Members]] = field(default_factory=dict)
    error: str | None = None  # set when the tar is empty, truncated or corrupt part way


def index_tar(tar_path: Path) -> TarIndex:
    """Offsets and hashes of images, contents of captions and metadata, stopping cleanly at damage.

    Members are grouped into samples as webdataset does: a sample is a run of consecutive members
    with one key, so a key that comes back later, or repeats an extension, starts another copy."""
    index = TarIndex()
    file_size = tar_path.stat().st_size
    if file_size == 0:
        index.error = f"{tar_path.name} is empty (0 bytes)"
        return index
    previous_key = None
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for info in tar:
                name = info.name.rsplit("/", 1)[-1]
                if not info.isfile() or "." not in name:
                    continue
                key, ext = name.split(".", 1)
                kind = _MEMBER_FIELD.get(ext.lower())
                copies = index.copies.setdefault(key, [])
                if key != previous_key or (kind and getattr(copies[-1], kind) is not None):
                    copies.append(_Members())
                previous_key, entry = key, copies[-1]
                if info.offset_data + info.size > file_size:
                    index.error = f"tar truncated inside {info.name}"
                    break
                if kind == "image":
                    entry.image = (info.offset_data, info.size)
                    entry.image_sha256 = hashlib.file_digest(tar.extractfile(info), "sha256").hexdigest()
                elif kind:
                    setattr(entry, kind, tar.extractfile(info).read())
    except (tarfile.TarError, EOFError, OSError) as exc:
        index.error = f"tar truncated or corrupt after {len(index.copies)} samples: {exc}"
    return index


# What img2dataset writes per shard: NNNNN.tar and its two sidecars.
SHARD_FILES = (".tar", ".parquet", "_stats.json")


def shard_version(source: Path, shard: str, code_version: str) -> str:
    """A shard's data version for raw_shards: SHA-256 of the code version and of each of the
    shard's files, streamed (a missing one counts as missing). Only bytes count, not where the
    folder is: re-reading the same bytes is no change for the stages below."""
    lines = [f"code_version {code_version}"]
    for suffix in SHARD_FILES:
        path = source / f"{shard}{suffix}"
        lines.append(f"{suffix} {sha256_of(path) if path.is_file() else 'missing'}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _read_sidecar(path: Path, parse):
    """(parsed content, None) or (None, why the file cannot be used)."""
    if not path.is_file():
        return None, f"{path.name} missing"
    try:
        return parse(path), None
    except Exception as exc:  # pyarrow and json raise many types for broken files
        return None, f"{path.name} unusable: {exc}"


def _parquet_rows(path: Path) -> dict[str, dict]:
    rows = pq.read_table(path).to_pylist()
    keyed = {str(r["key"]): r for r in rows if r.get("key") is not None}
    if len(keyed) != len(rows):
        raise ValueError(f"{len(rows) - len(keyed)} of {len(rows)} rows have no key or a repeated key")
    return keyed


def _stats(path: Path) -> dict:
    stats = json.loads(path.read_text())
    if not isinstance(stats, dict):
        raise ValueError(f"a JSON {type(stats).__name__}, not an object")
    return stats


MAX_SIDE = 200_000  # pixels; a larger width or height in the metadata is not a real image
_STRING_FIELDS = ("url", "caption", "sha256", "status", "error_message")


def _side(value) -> int | None:
    """A width or height as int, or None when it is not a whole number of pixels in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():  # also NaN and infinity
        return None
    return int(value) if 1 <= value <= MAX_SIDE else None


def _bad_fields(record: dict) -> list[str]:
    """Metadata fields whose value has the wrong type (or an impossible size)."""
    bad = [f for f in _STRING_FIELDS if record.get(f) is not None and not isinstance(record[f], str)]
    return bad + [f for f in ("width", "height") if record.get(f) is not None and _side(record[f]) is None]


def _parse_meta(raw: bytes | None) -> tuple[dict, str | None]:
    if raw is None:
        return {}, None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}, "json_unreadable"
    return (meta, None) if isinstance(meta, dict) else ({}, "json_not_object")


def _sample_row(key: str, found: _Members, listed: dict, tar_path: str, tar_error: str | None) -> dict:
    notes: list[str] = []
    meta, meta_problem = _parse_meta(found.meta)
    if meta_problem:
        notes.append(meta_problem)
    record = {**listed, **meta}  # the tar's own metadata wins over the parquet row
    bad = _bad_fields(record)
    record.update(dict.fromkeys(bad))  # an unusable value is not stored

    caption = None
    if found.caption is not None:
        try:
            caption = found.caption.decode("utf-8")
        except UnicodeDecodeError:
            caption = found.caption.decode("utf-8", errors="replace")
            notes.append("caption_not_utf8")
    elif record.get("caption") is not None and found.image is not None:
        caption = record["caption"]
        notes.append("caption_from_metadata")

    download_status = record.get("status") or ("success" if found.image else None)
    status, error = "ok", None
    if bad:
        status, error = "invalid", "bad_field:" + ",".join(bad)
    elif download_status not in (None, "success"):
        status, error = "failed_to_download", record.get("error_message") or download_status
    elif found.image is None:
        status = "invalid"
        error = "missing_image" + (f" ({tar_error})" if tar_error else "")
    elif caption is None:
        status, error = "invalid", "missing_caption"
    elif not meta and not listed:
        status, error = "invalid", meta_problem or "missing_metadata"

    offset, size = found.image if found.image else (None, None)
    return {
        "key": key,
        "url": record.get("url"),
        "caption": caption if caption is not None else record.get("caption"),
        "width": _side(record.get("width")),
        "height": _side(record.get("height")),
        "sha256": record.get("sha256"),
        "download_status": download_status,
        "download_error": record.get("error_message"),
        "status": status,
        "error": error,
        "notes": ";".join(notes) or None,
        "tar_path": tar_path,
        "image_offset": offset,
        "image_size": size,
        "image_sha256": found.image_sha256,
    }


def read_shard(source: Path, shard: str) -> tuple[pa.Table, dict]:
    """One row per input sample (RAW_SHARD_SCHEMA) and a dict of shard-level facts.

    A key found more than once in the tar keeps its first complete copy under its own key; every
    other copy becomes an invalid row `KEY.dupN` (N: its place among the copies) with error
    `duplicate_key`, so keys stay unique and each copy is accounted for. A tar key has no '.',
    so these names cannot clash with a real key."""
    tar_path = source / f"{shard}.tar"
    if not tar_path.is_file():
        raise FileNotFoundError(
            f"shard tar not found: {tar_path} (a partition added for a shard that does not exist, or whose "
            f"file was deleted or moved; FLIP_SOURCE names the folder). Outputs already written are kept. "
            f"To remove the partition: {SHARDS_COMMAND} remove {shard}"
        )
    parquet_rows, parquet_problem = _read_sidecar(source / f"{shard}.parquet", _parquet_rows)
    stats, stats_problem = _read_sidecar(source / f"{shard}_stats.json", _stats)
    index = index_tar(tar_path)
    parquet_rows = parquet_rows or {}
    resolved = str(tar_path.resolve())

    rows = []
    for key in sorted(set(parquet_rows) | set(index.copies)):
        copies = index.copies.get(key) or [_Members()]
        kept = next((c for c in copies if c.complete()), copies[0])
        rows.append(_sample_row(key, kept, parquet_rows.get(key, {}), resolved, index.error))
        rows.extend(
            {**_sample_row(f"{key}.dup{n}", copy, {}, resolved, index.error), "status": "invalid", "error": "duplicate_key"}
            for n, copy in enumerate(copies, 1)
            if copy is not kept
        )
    facts = {
        "tar_error": index.error,
        "img2dataset_stats": stats,
        "stats_problem": stats_problem,
        "problems": [p for p in (index.error, parquet_problem, stats_problem) if p],
    }
    return pa.Table.from_pylist(rows, schema=RAW_SHARD_SCHEMA), facts


class StaleShardError(RuntimeError):
    """A tar no longer holds the image bytes raw_shards recorded for a sample."""


def read_sample_image(row: dict) -> bytes | None:
    """The image of a raw_shards row, checked against the hash raw_shards took: a tar rewritten
    since would otherwise hand over another sample's picture at the recorded offset."""
    data = read_image_bytes(row["tar_path"], row["image_offset"], row["image_size"])
    if data is not None and hashlib.sha256(data).hexdigest() != row.get("image_sha256"):
        raise StaleShardError(
            f"sample {row['key']}: the {row['image_size']} bytes at offset {row['image_offset']} of {row['tar_path']} "
            "are not the image raw_shards recorded (the tar changed since, or raw_shards predates image hashes); "
            "re-materialize raw_shards for this shard"
        )
    return data


def read_image_bytes(tar_path: str, offset: int | None, size: int | None) -> bytes | None:
    if offset is None or size is None:
        return None
    with open(tar_path, "rb") as f:
        f.seek(offset)
        return f.read(size)
