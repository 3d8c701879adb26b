"""The release index, kept per shard: adding or re-running one shard costs work in proportion to
that shard, not to the whole dataset.

Each shard's index file (release_index/<shard>.parquet) holds the entries of its published
candidates: key, SHA-256, perceptual hash, and both as 64-bit numbers (h, s64) that lookups
compare. It is a function of that shard's candidates alone, so the files are the same whatever
order the shards ran in, and each is published on its own, atomically, like every asset file.
Its footer records a stamp of the candidates file it came from (candidates_stamp: the footer
fingerprint, storage.footer_fingerprint), so an index older than its candidates is seen by
reading footers, not rows.

Verdicts (dedup.py: the first occurrence by shard, then key, is kept) are decided for one shard
from the index: its entries are looked up, then the entries close to those that come earlier,
and so on back (shard_verdicts); the verdict of an entry depends only on the earlier entries
linked to it by same bytes or close hashes, so deciding over that set gives exactly what one
pass over every candidate (dedup.find_duplicates on near_pairs) gives. A shard's verdicts depend
on the shards up to it only: stale_shards names those whose index is missing or older than
their candidates, and a release refuses them.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flip_assets.core.io import storage
from flip_assets.core.release.dedup import Candidate, Verdict, bands, find_duplicates

STAMP_KEY = b"candidates_stamp"
# The layout of the entries (columns, how h and s64 are made): an index file of another layout
# is stale, whatever its candidates.
FORMAT_KEY, FORMAT = b"index_format", b"3"
ENTRY_SCHEMA = pa.schema(
    [
        ("shard", pa.string()),
        ("key", pa.string()),
        ("sha256", pa.string()),
        ("phash", pa.string()),  # 16 hex digits; null when the image could not be read
        ("h", pa.uint64()),  # phash as a number
        ("s64", pa.uint64()),  # the SHA-256's first 64 bits: a lookup key, confirmed on sha256
    ]
)
# A probe's band values are looked up with every flip within the band's radius: beyond this
# many per band, a layout with more, shorter bands costs less.
MAX_FLIPS = 2_000


def entries(candidates: Path) -> pa.Table:
    """The index entries of one shard's candidates file, stamped with it."""
    table = storage.query_table(storage.sql_file("release_index_entries.sql"), candidates=str(candidates))
    table = table.cast(ENTRY_SCHEMA) if table.num_rows else ENTRY_SCHEMA.empty_table()
    return table.replace_schema_metadata(stamp_metadata(candidates))


def stamp_metadata(candidates: Path) -> dict[bytes, bytes]:
    """What an index file's footer records of the candidates file it was made from."""
    return {STAMP_KEY: storage.footer_fingerprint(candidates).encode(), FORMAT_KEY: FORMAT}


def recorded_stamp(index_file: Path) -> str | None:
    """The candidates stamp an index file records; None for a file of another format."""
    metadata = pq.read_schema(index_file).metadata or {}
    return metadata.get(STAMP_KEY, b"").decode() or None if metadata.get(FORMAT_KEY) == FORMAT else None


def stale_shards(candidates: dict[str, Path], index: dict[str, Path], upto: str) -> list[tuple[str, str]]:
    """(shard, why) for every shard up to `upto` whose index does not match its candidates: not
    indexed, its candidates changed since, or indexed with no candidates left."""
    stale = []
    for shard in sorted(set(candidates) | set(index)):
        if shard > upto:
            break
        if shard not in index:
            stale.append((shard, "not indexed"))
        elif shard not in candidates:
            stale.append((shard, "indexed, its candidates are gone"))
        elif (recorded := recorded_stamp(index[shard])) is None:
            stale.append((shard, "indexed by another version of release_index"))
        elif recorded != storage.footer_fingerprint(candidates[shard]):
            stale.append((shard, "candidates changed since indexed"))
    return stale


def lookup_plan(max_distance: int, probes: int, indexed: int) -> tuple[list[int], list[int], list[list[int]]]:
    """Bands (shifts, masks) and per band the flips to look up, for `probes` entries against an
    index of `indexed`, at the least estimated cost: every index entry is read once per band, each
    probe's flips fill a hash table, and each flip meets indexed / 2^bits entries by chance. Few
    long bands with a radius suit a large index (two 32-bit bands within 2 bits at 4 bits: one
    chance match per 20,000 probes' flips at 80 M), many short exact ones a small one."""
    best = None
    for count in range(1, max_distance + 2):
        radius = max_distance // count
        shifts, masks = bands(count)
        widths = [m.bit_length() for m in masks]
        flips = sum(math.comb(max(widths), k) for k in range(radius + 1))
        if flips > MAX_FLIPS and count < max_distance + 1:
            continue
        cost = count * (indexed + 3 * probes * flips + probes * flips * indexed / 2 ** min(widths))
        if best is None or cost < best[0]:
            best = (cost, shifts, masks, [_flips(w, radius) for w in widths])
    return best[1], best[2], best[3]


def _flips(width: int, radius: int) -> list[int]:
    return [sum(1 << b for b in bits) for k in range(radius + 1) for bits in combinations(range(width), k)]


def _neighbours(probe: pa.Table, files: list[Path], max_distance: int, indexed: int, workdir: Path) -> list[tuple[int, dict, bool]]:
    """(probe row, index entry, same_sha) for every entry of `files` close to a probe row."""
    path = workdir / "probe.parquet"
    pq.write_table(probe.select(["h", "s64"]).append_column("qrow", pa.array(range(probe.num_rows), pa.int64())), path)
    shifts, masks, flips = lookup_plan(max_distance, probe.num_rows, indexed)
    matches = storage.query(
        storage.sql_file("release_index_neighbours.sql"), probe=str(path), index=[str(f) for f in files],
        shifts=shifts, masks=masks, flips=flips, max_distance=max_distance,
    )  # fmt: skip
    by_file = defaultdict(set)
    for m in matches:
        by_file[m["file"]].add(m["row"])
    rows = {}
    for file, wanted in by_file.items():  # only the matched rows' strings are read
        order = sorted(wanted)
        taken = pq.read_table(file, columns=ENTRY_SCHEMA.names).take(order).to_pylist()
        rows.update({(file, r): entry for r, entry in zip(order, taken)})
    return [(m["qrow"], rows[m["file"], m["row"]], m["same_sha"]) for m in matches]


def _rows(files: list[Path]) -> int:
    return storage.query(storage.sql_file("release_index_rows.sql"), files=[str(f) for f in files])[0]["n"]


def shard_verdicts(shard_entries: pa.Table, files: list[Path], max_distance: int, indexed: int | None = None) -> dict[str, Verdict]:
    """The verdict of each entry of one shard (by key), against the index `files` (every shard's
    that may come before it, this shard's own included). `indexed`: the number of entries in
    the files, for the lookup plan (counted from their footers when not given)."""
    if indexed is None:  # from the footers only
        indexed = _rows(files)
    members = {(r["shard"], r["key"]): Candidate(r["shard"], r["key"], r["sha256"], r["phash"]) for r in shard_entries.to_pylist()}
    near: set[tuple[tuple[str, str], tuple[str, str]]] = set()
    frontier = shard_entries
    with tempfile.TemporaryDirectory(prefix="release_index_") as tmp:
        while frontier.num_rows:
            probe_ids = list(zip(frontier["shard"].to_pylist(), frontier["key"].to_pylist()))
            earlier = {}
            for qrow, entry, same_sha in _neighbours(frontier, files, max_distance, indexed, Path(tmp)):
                a, b = probe_ids[qrow], (entry["shard"], entry["key"])
                if a == b or (same_sha and members[a].sha256 != entry["sha256"]):
                    continue  # itself, or another image whose SHA-256 digest agrees by chance
                if b < a and b not in members:  # an earlier entry the verdict may depend on
                    earlier[b] = entry
                if not same_sha and (b in members or b in earlier):
                    near.add((min(a, b), max(a, b)))
            members.update({k: Candidate(k[0], k[1], e["sha256"], e["phash"]) for k, e in earlier.items()})
            frontier = pa.Table.from_pylist(list(earlier.values()), schema=ENTRY_SCHEMA)
    pairs = [{"earlier_shard": e[0], "earlier_key": e[1], "later_shard": l[0], "later_key": l[1]} for e, l in near]
    verdicts = find_duplicates(members.values(), pairs)
    return {key: verdicts[shard, key] for shard, key in zip(shard_entries["shard"].to_pylist(), shard_entries["key"].to_pylist())}



# Invalidations: a re-run of one shard's index can change the verdicts of later shards (its new
# entries may be earlier copies of theirs; its old ones may have been what theirs copied), whose
# releases Dagster sees no reason to re-run (each release depends on its own shard's index).
# The re-run leaves a marker, INVALIDATED/<later shard>/<shard>.<run id>, for each later shard it
# reaches; a release records the markers it saw before it read the index, so one published
# since a marker was left is out of date, and is named, never read as current.
INVALIDATED = "invalidated"
SEEN_KEY = b"index_invalidations_seen"


def later_shards_reached(changed: pa.Table, later: list[Path], max_distance: int) -> list[str]:
    """The shards of the index files `later` (those after the re-run shard) holding an entry
    linked to an entry of `changed` (the shard's entries before and after the re-run) by the same
    bytes or a close hash, directly or through entries of other later shards: those whose
    verdicts may change. Work in proportion to the linked entries."""
    if not later or not changed.num_rows:
        return []
    indexed = _rows(later)
    seen: set[tuple[str, str]] = set()
    frontier = changed
    with tempfile.TemporaryDirectory(prefix="release_index_") as tmp:
        while frontier.num_rows:
            sha = frontier["sha256"].to_pylist()
            found = {}
            for qrow, entry, same_sha in _neighbours(frontier, later, max_distance, indexed, Path(tmp)):
                linked = (entry["shard"], entry["key"])
                if (same_sha and sha[qrow] != entry["sha256"]) or linked in seen:
                    continue  # another image whose digest's first 64 bits agree by chance, or known
                seen.add(linked)
                found[linked] = entry
            frontier = pa.Table.from_pylist(list(found.values()), schema=ENTRY_SCHEMA)
    return sorted({shard for shard, _ in seen})


def mark_invalidated(folder: Path, shards: list[str], by_shard: str, run_id: str) -> list[Path]:
    """Leave a marker for each later shard whose release the re-run of `by_shard` may change;
    written after the shard's new index is published, so a release that sees it reads that index."""
    markers = []
    for shard in shards:
        marker = folder / INVALIDATED / shard / f"{by_shard}.{run_id}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        markers.append(marker)
    return markers


def invalidations(folder: Path, shard: str) -> list[str]:
    """The markers left for a shard's release so far (they are never removed)."""
    marked = folder / INVALIDATED / shard
    return sorted(p.name for p in marked.iterdir()) if marked.is_dir() else []


def seen_metadata(seen: list[str]) -> dict[bytes, bytes]:
    """What a release file's footer records of the markers its release saw."""
    return {SEEN_KEY: json.dumps(seen).encode()}


def out_of_date_releases(folder: Path, releases: dict[str, Path]) -> list[tuple[str, str]]:
    """(shard, why) for each published release (by shard) that a marker left after it was made
    says is out of date. Reads only the shards with markers."""
    marked = folder / INVALIDATED
    stale = []
    for shard in sorted(p.name for p in marked.iterdir()) if marked.is_dir() else []:
        if shard not in releases:
            continue
        metadata = pq.read_schema(releases[shard]).metadata or {}
        unseen = sorted(set(invalidations(folder, shard)) - set(json.loads(metadata.get(SEEN_KEY, b"[]"))))
        if unseen:
            by = sorted({marker.split(".", 1)[0] for marker in unseen})
            stale.append((shard, f"release_index of shard(s) {', '.join(by)} changed since it was released"))
    return stale
