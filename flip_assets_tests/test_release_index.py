"""The incremental release index (core/release/index.py) on synthetic shards with planted copies
(bench.scale's generator, 20,000 candidates): a shard's verdicts from the index equal the full
rebuild's whatever order the shards were indexed in, every planted copy is found, and an index
older than the candidates is named, never used."""

import hashlib
import random
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.scale import add_shard, full_rebuild, generate, planted_keys, rerun_first_shard, synthetic_rows
from flip_assets.core.io import storage
from flip_assets.core.release import index

ROWS, SHARD_SIZE, COPIES = 20_000, 2_000, 0.02


def test_adding_one_shard_decides_what_the_full_rebuild_decides_and_finds_every_planted_copy(tmp_path):
    planted = generate(tmp_path, ROWS, SHARD_SIZE, COPIES, full_candidates=True)
    in_index, in_new = planted_keys(ROWS, SHARD_SIZE, COPIES)
    assert (len(in_index), len(in_new)) == (planted["planted_in_index"], planted["planted_in_new_shard"]) == (720, 160)
    added, rebuilt = add_shard(tmp_path, 4), full_rebuild(tmp_path, 4)
    assert added["verdicts"] == rebuilt["verdicts"]
    assert in_new <= set(added["verdicts"]) and in_index | in_new <= set(rebuilt["not_kept"])
    assert added["stale_shards"] == 0 and added["keys_in_several_shards"] == 0
    # Later shards copy the first shard's images: a re-run of it reaches some of the 9 after it.
    assert 0 < rerun_first_shard(tmp_path, 4)["later_shards_reached"] <= ROWS // SHARD_SIZE - 1
    # The generator's entries are those the entries query makes from the candidates.
    some = tmp_path / "release_candidates" / "00000003.parquet"
    assert index.entries(some).equals(pq.read_table(tmp_path / "release_index" / "00000003.parquet"))


def test_verdicts_are_the_same_whatever_order_the_shards_were_indexed_in(tmp_path):
    """Shards holding exact and near copies of several earlier shards' images, indexed in two
    orders into two folders: for every shard, the same verdicts, those of one pass over all
    candidates."""
    ids = np.arange(4 * 50, dtype=np.int64)
    exact_of, near_of = np.full(200, -1), np.full(200, -1)
    exact_of[50:55], near_of[100:105], exact_of[150:155], near_of[155:160] = range(5), range(5, 10), range(60, 65), range(110, 115)
    near_of[160:165] = range(5)
    table = synthetic_rows(ids, ids // 50, exact_of, near_of)
    candidates = tmp_path / "candidates"
    candidates.mkdir()
    shards = [f"{s:08d}" for s in range(4)]
    for i, shard in enumerate(shards):
        pq.write_table(table.slice(50 * i, 50), candidates / f"{shard}.parquet")
    verdicts = []
    for order in (shards, random.Random(3).sample(shards, 4)[::-1]):
        folder = tmp_path / "-".join(order)
        folder.mkdir()
        for shard in order:
            storage.write_table(folder / f"{shard}.parquet", index.entries(candidates / f"{shard}.parquet"))
        files = storage.partition_files(folder / "*.parquet")
        verdicts.append({
            s: index.shard_verdicts(pq.read_table(files[s]), [f for t, f in files.items() if t <= s], 4) for s in shards
        })  # fmt: skip
    assert verdicts[0] == verdicts[1]
    from flip_assets.core.release.dedup import Candidate, find_duplicates, near_pairs

    rows = [Candidate(r["shard"], r["key"], r["sha256"], r["phash"]) for r in table.to_pylist()]
    full = find_duplicates(rows, near_pairs(str(candidates / "*.parquet"), 4))
    assert {(s, k): v for s, by_key in verdicts[0].items() for k, v in by_key.items()} == full
    assert sum(v.status != "kept" for v in full.values()) == 25


def test_an_index_older_than_the_candidates_is_named_not_used(tmp_path):
    rows = synthetic_rows(np.arange(30), np.arange(30) // 10, np.full(30, -1), np.full(30, -1))
    candidates, folder = tmp_path / "candidates", tmp_path / "index"
    candidates.mkdir(), folder.mkdir()
    for s in range(3):
        pq.write_table(rows.slice(10 * s, 10), candidates / f"{s:08d}.parquet")
        storage.write_table(folder / f"{s:08d}.parquet", index.entries(candidates / f"{s:08d}.parquet"))
    current = lambda: {p.stem: p for p in candidates.glob("*.parquet")}  # noqa: E731
    assert index.stale_shards(current(), storage.partition_files(folder / "*.parquet"), "00000002") == []
    pq.write_table(rows.slice(10, 9), candidates / "00000001.parquet")  # re-run: one candidate fewer
    pq.write_table(rows.slice(0, 1), candidates / "00000003.parquet")  # added, not indexed
    shutil.copy(candidates / "00000000.parquet", tmp_path / "copy.parquet")  # a copy keeps its stamp
    (candidates / "00000002.parquet").unlink()  # removed, still indexed
    assert storage.footer_fingerprint(tmp_path / "copy.parquet") == index.recorded_stamp(folder / "00000000.parquet")
    assert index.stale_shards(current(), storage.partition_files(folder / "*.parquet"), "00000003") == [
        ("00000001", "candidates changed since indexed"),
        ("00000002", "indexed, its candidates are gone"),
        ("00000003", "not indexed"),
    ]
    old_format = pq.read_table(folder / "00000000.parquet").replace_schema_metadata({index.STAMP_KEY: b"x"})
    pq.write_table(old_format, folder / "00000000.parquet")
    assert index.stale_shards(current(), storage.partition_files(folder / "*.parquet"), "00000000") == [("00000000", "indexed by another version of release_index")]
    storage.write_table(folder / "00000000.parquet", index.entries(candidates / "00000000.parquet"))
    # A shard's verdicts depend on the shards up to it only.
    assert index.stale_shards(current(), storage.partition_files(folder / "*.parquet"), "00000000") == []
    assert index.recorded_stamp(folder / "00000000.parquet") != storage.footer_fingerprint(candidates / "00000001.parquet")


def test_the_lookup_plan_suits_the_index_size():
    """Few long bands with a radius for a large index, the exact bands for a small one; every
    plan finds hashes at the distance (the flips cover each band's radius)."""
    shifts, masks, flips = index.lookup_plan(4, 10_000, 80_000_000)
    assert (shifts, [len(f) for f in flips]) == ([0, 32], [529, 529])
    assert len(index.lookup_plan(4, 100_000, 100_000)[0]) == 5
    rng = random.Random(0)
    for count_bits in range(5):
        for distance in range(count_bits + 1):
            shifts, masks, flips = index.lookup_plan(count_bits, 10, 10**8)
            a = rng.getrandbits(64)
            b = a ^ sum(1 << bit for bit in rng.sample(range(64), distance))
            assert any(((a >> s) & m) ^ f == (b >> s) & m for s, m, fl in zip(shifts, masks, flips) for f in fl)


def test_a_second_run_of_one_shards_index_is_refused_and_the_published_file_stays_whole(tmp_path):
    """release_index of a shard while another run holds it (as a run still writing it would):
    refused, naming the holder; the file published before is untouched and still reads whole."""
    from dagster import DagsterInstance, materialize

    from flip_assets.defs.release.assets import release_index
    from flip_assets.defs.release.resources import ReleaseResource
    from flip_assets.defs.storage import FlipStorage

    shard = "00000000"
    rows = synthetic_rows(np.arange(20), np.zeros(20, dtype=np.int64), np.full(20, -1), np.full(20, -1))
    storage.write_table(storage.partition_path(tmp_path, "release_candidates", shard), rows)
    resources = {"flip_storage": FlipStorage(home=str(tmp_path)), "release": ReleaseResource()}
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("shards", [shard])
        assert materialize([release_index], resources=resources, instance=instance, partition_key=shard).success
        published = storage.partition_path(tmp_path, "release_index", shard)
        before = published.read_bytes()
        holder = storage.PartitionLock(published, "other-run")
        try:
            result = materialize([release_index], resources=resources, instance=instance, partition_key=shard, raise_on_error=False)
        finally:
            holder.release()
    assert not result.success
    assert published.read_bytes() == before and pq.read_table(published).num_rows == 20
    assert "is being materialized by run other-run" in str(result.all_events)


def _entries_of(folder, shard: str, rows: list[tuple[str, str, int]]):
    """Index entries (key, sha256 seed, perceptual hash) of one shard, as the entries query makes
    them from its candidates; written to folder/<shard>.parquet."""
    candidates = folder.parent / f"candidates-{shard}.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"shard": shard, "key": key, "sha256": hashlib.sha256(seed.encode()).hexdigest(), "phash": f"{h:016x}"}
        for key, seed, h in rows
    ]), candidates)  # fmt: skip
    table = index.entries(candidates)
    storage.write_table(folder / f"{shard}.parquet", table)
    return table


def test_a_re_run_reaches_the_later_shards_linked_to_its_old_or_new_entries_and_their_releases_become_out_of_date(tmp_path):
    """Shard 0 re-run: its new entry H has a near copy in shard 1 (4 bits), which has one in shard
    2 (4 bits from it, 8 from H: reached only through shard 1); its old entry G had a near copy
    in shard 3; shard 4 is unrelated. Markers left for the reached shards make a release made
    before them out of date, and one made after them current."""
    folder = tmp_path / "release_index"
    folder.mkdir()
    H, G = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    old = _entries_of(folder, "00000000", [("a", "a", G)])
    new = _entries_of(folder, "00000000", [("b", "b", H)])
    _entries_of(folder, "00000001", [("c", "c", H ^ 0xF), ("c2", "c2", 0x1111111111111111)])
    _entries_of(folder, "00000002", [("d", "d", H ^ 0xFF)])
    _entries_of(folder, "00000003", [("e", "e", G ^ 0x1)])
    _entries_of(folder, "00000004", [("f", "f", 0x5555555555555555)])
    later = [f for s, f in storage.partition_files(folder / "*.parquet").items() if s > "00000000"]
    assert index.later_shards_reached(new, later, 4) == ["00000001", "00000002"]
    assert index.later_shards_reached(pa.concat_tables([old, new]), later, 4) == ["00000001", "00000002", "00000003"]
    assert index.later_shards_reached(new, later, 3) == []  # 4 bits away is not close at 3

    releases = tmp_path / "flip_release"
    releases.mkdir()

    def publish_release(shard):
        empty = pa.table({"key": pa.array([], pa.string())})
        pq.write_table(empty.replace_schema_metadata(index.seen_metadata(index.invalidations(folder, shard))), releases / f"{shard}.parquet")

    for shard in ("00000001", "00000003", "00000004"):
        publish_release(shard)
    assert index.out_of_date_releases(folder, storage.partition_files(releases / "*.parquet")) == []
    index.mark_invalidated(folder, ["00000001", "00000002", "00000003"], "00000000", "run1")
    assert index.out_of_date_releases(folder, storage.partition_files(releases / "*.parquet")) == [
        ("00000001", "release_index of shard(s) 00000000 changed since it was released"),
        ("00000003", "release_index of shard(s) 00000000 changed since it was released"),
    ]  # 00000002 has no release yet; 00000004 was not reached
    publish_release("00000001")
    assert [s for s, _ in index.out_of_date_releases(folder, storage.partition_files(releases / "*.parquet"))] == ["00000003"]
    index.mark_invalidated(folder, ["00000001"], "00000000", "run2")  # a second re-run of shard 0
    assert [s for s, _ in index.out_of_date_releases(folder, storage.partition_files(releases / "*.parquet"))] == ["00000001", "00000003"]
