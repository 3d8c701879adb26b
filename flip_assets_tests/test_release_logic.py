"""The release's logic without Dagster: blocklist parsing, deduplication order, NSFW labels,
exclusion reasons, stage schema errors (the assets on real shards: test_release.py)."""

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flip_assets.core.release.blocklist import Blocklist, BlocklistError, read_blocklist
from flip_assets.core.release.dedup import DUPLICATE_SHA256, KEPT, NEAR_DUPLICATE, Candidate, Verdict, find_duplicates, near_pairs
from flip_assets.core.release.nsfw import NSFW, UNLIKELY, UNSURE, NsfwThresholds
from flip_assets.core.release.release import (
    CANDIDATES_SCHEMA,
    RELEASE_SCHEMA,
    ReleasePolicy,
    StageSchemaError,
    require_columns,
    split_release,
)

SHA = "ab" * 32


def test_blocklist_reads_urls_hashes_and_comments(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text(f"# removed on request\n\nhttps://example.org/a.jpg\n{SHA.upper()}  # CSAM hash list\n")
    blocklist = read_blocklist(path)
    assert len(blocklist) == 2
    assert blocklist.reason("https://example.org/a.jpg") == "url"
    assert blocklist.reason("https://example.org/b.jpg", None, SHA) == "sha256"
    assert blocklist.reason("https://example.org/b.jpg", "cd" * 32) is None
    assert read_blocklist(None) == Blocklist()


@pytest.mark.parametrize(
    "line",
    [
        "ftp://example.org/a.jpg", "abc123", "ab" * 31 + "a", "https://example.org/a b.jpg", "sha256:" + SHA,
        "https://example.org:99999/a.jpg", "http://example.org:port/a.jpg", "https://:443/a.jpg",
    ],
)  # fmt: skip
def test_a_malformed_blocklist_line_fails_naming_file_and_line(tmp_path, line):
    path = tmp_path / "blocklist.txt"
    path.write_text(f"https://example.org/ok.jpg\n# comment\n{line}\n")
    with pytest.raises(BlocklistError, match=rf"{path}, line 3: "):
        read_blocklist(path)


def test_a_missing_blocklist_fails_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_blocklist(tmp_path / "missing.txt")


# (entry, sample URLs it lists, sample URLs it does not): a takedown names a resource, however
# its URL is written (issue 19 item 5). What is and is not equal: docs/release.md, Safety.
SAME_RESOURCE = [
    ("https://Example.ORG:443/a.jpg", ["http://example.org/a.jpg", "HTTP://EXAMPLE.ORG:80/a.jpg#top", "http://example.org./a.jpg"],
     ["http://example.org/A.jpg", "http://example.org:8080/a.jpg", "http://example.org:443/a.jpg", "http://other.org/a.jpg"]),
    ("http://example.org/%7euser/b%2fc.jpg", ["https://example.org/~user/b%2Fc.jpg"], ["https://example.org/~user/b/c.jpg"]),
    ("https://example.org/caf%c3%a9%20au%20lait.jpg", ["http://example.org/café au lait.jpg"], ["http://example.org/cafe au lait.jpg"]),
    ("http://xn--bcher-kva.de/x.jpg", ["https://BÜCHER.de/x.jpg"], ["https://bucher.de/x.jpg"]),
    ("https://example.org/dir/", ["http://example.org/dir"], ["http://example.org/dir/x"]),
    ("https://example.org", ["http://example.org/"], ["http://example.org/index.html"]),
    ("https://example.org/q.jpg?size=1&c=2", ["http://example.org/q.jpg?size=1&c=2#f"],
     ["http://example.org/q.jpg", "http://example.org/q.jpg?c=2&size=1", "http://example.org/q.jpg?size=2&c=2"]),
]  # fmt: skip


@pytest.mark.parametrize("entry, same, other", SAME_RESOURCE)
def test_a_url_entry_lists_every_url_of_the_same_resource(tmp_path, entry, same, other):
    path = tmp_path / "blocklist.txt"
    path.write_text(f"{entry}\n")
    blocklist = read_blocklist(path)
    assert [blocklist.reason(url) for url in same] == ["url"] * len(same)
    assert [blocklist.reason(url) for url in other] == [None] * len(other)
    assert blocklist.matches(same[0], None, SHA) == [entry]
    # Not a URL (a Flickr8k file name) or not parseable: compared as written, never a crash.
    assert blocklist.reason("1000268201_693b08cb0e.jpg") is blocklist.reason("http://example.org:x/a.jpg") is None


def test_unmatched_blocklist_entries_are_judged_over_every_shard(tmp_path):
    """A blocklist is global: an entry that lists a candidate of any published shard matched
    something; the others (a typo, a sample not in the data) are reported."""
    from flip_assets.core.release.release import unmatched_blocklist_entries
    from flip_assets.core.io.storage import write_table

    other_sha = "cd" * 32
    shards = {
        "00000": [_candidate("1"), _candidate("2", URL="http://Example.org:80/2.jpg")],
        "00001": [_candidate("3", URL="1000268201_693b08cb0e.jpg", source_sha256=other_sha.upper()),
                  _candidate("4", URL="https://example.net/4.jpg")],
    }  # fmt: skip
    for shard, rows in shards.items():
        write_table(tmp_path / f"{shard}.parquet", pa.Table.from_pylist(rows, schema=CANDIDATES_SCHEMA))
    path = tmp_path / "blocklist.txt"
    entries = [
        "https://example.org/2.jpg/",  # 00000's candidate 2
        "https://example.org/5.jpg",  # a host in the data, but no such image
        "https://typo.example.org/4.jpg",
        f"{int('1'):064x}",  # candidate 1's sha256
        other_sha,  # candidate 3's img2dataset hash, in upper case there
        "ef" * 32,
    ]
    path.write_text("\n".join(entries) + "\n")
    blocklist = read_blocklist(path)
    assert unmatched_blocklist_entries(blocklist, str(tmp_path / "*.parquet")) == [entries[1], entries[2], entries[5]]
    hashes_only = Blocklist(sha256s=frozenset({other_sha, "ef" * 32}))
    assert unmatched_blocklist_entries(hashes_only, str(tmp_path / "*.parquet")) == ["ef" * 32]
    assert unmatched_blocklist_entries(Blocklist(), str(tmp_path / "*.parquet")) == []


def test_a_blocklist_path_that_is_a_directory_says_so(tmp_path):
    with pytest.raises(IsADirectoryError, match=rf"blocklist {tmp_path} is a directory, not a file"):
        read_blocklist(tmp_path)


def _hash(bits: int) -> str:
    return f"{bits:016x}"


CANDIDATES = [
    Candidate("00000", "000000001", "s1", _hash(0xF0F0_F0F0_F0F0_F0F0)),
    Candidate("00000", "000000002", "s2", _hash(0x0F0F_0F0F_0F0F_0F0F)),
    Candidate("00001", "000010001", "s1", _hash(0xF0F0_F0F0_F0F0_F0F0)),  # same bytes as 000000001
    Candidate("00001", "000010002", "s3", _hash(0xF0F0_F0F0_F0F0_F0F3)),  # 2 bits from 000000001
    Candidate("00001", "000010003", "s4", _hash(0x0F0F_0F0F_0F0F_0F0F ^ 0xFF)),  # 8 bits from 000000002
    Candidate("00002", "000020001", "s3", _hash(0xF0F0_F0F0_F0F0_F0F3)),  # bytes of the near-duplicate
    Candidate("00002", "000020002", "s5", None),  # unreadable image: only its bytes count
]


def verdicts(tmp_path, candidates, max_distance=4):
    """find_duplicates on the close pairs DuckDB finds in a candidates file, as release_index does."""
    path = tmp_path / f"candidates_{max_distance}.parquet"
    pq.write_table(pa.Table.from_pylist([vars(c) for c in candidates]), path)
    return find_duplicates(candidates, near_pairs(str(path), max_distance))


def test_first_occurrence_by_shard_then_key_whatever_the_input_order(tmp_path):
    expected = {
        ("00000", "000000001"): Verdict(KEPT),
        ("00000", "000000002"): Verdict(KEPT),
        ("00001", "000010001"): Verdict(DUPLICATE_SHA256, "00000", "000000001"),
        ("00001", "000010002"): Verdict(NEAR_DUPLICATE, "00000", "000000001"),
        ("00001", "000010003"): Verdict(KEPT),
        # Identical bytes to a near-duplicate lie as near the kept image: the same verdict.
        ("00002", "000020001"): Verdict(NEAR_DUPLICATE, "00000", "000000001"),
        ("00002", "000020002"): Verdict(KEPT),
    }
    for seed in range(3):
        shuffled = random.Random(seed).sample(CANDIDATES, len(CANDIDATES))
        assert verdicts(tmp_path, shuffled) == expected


def test_near_duplicate_distance_is_a_setting(tmp_path):
    assert verdicts(tmp_path, CANDIDATES, max_distance=0)["00001", "000010002"] == Verdict(KEPT)
    assert verdicts(tmp_path, CANDIDATES, max_distance=8)["00001", "000010003"] == Verdict(NEAR_DUPLICATE, "00000", "000000002")


def test_a_near_duplicate_of_a_near_duplicate_is_kept_when_far_from_every_kept_image(tmp_path):
    chain = [Candidate("0", str(i), str(i), _hash((1 << 3 * i) - 1)) for i in range(3)]  # 0, 3 and 6 low bits set
    assert verdicts(tmp_path, chain) == {
        ("0", "0"): Verdict(KEPT), ("0", "1"): Verdict(NEAR_DUPLICATE, "0", "0"), ("0", "2"): Verdict(KEPT),
    }  # fmt: skip


def test_near_duplicates_are_found_in_every_band(tmp_path):
    """Two flipped bits anywhere in the 64 are found at distance 2 (the band lookup misses none)."""
    base = 0x1234_5678_9ABC_DEF0
    for low in range(0, 63, 7):
        other = base ^ (1 << low) ^ (1 << 63 - low // 2)
        pair = [Candidate("0", "a", "x", _hash(base)), Candidate("0", "b", "y", _hash(other))]
        assert verdicts(tmp_path, pair, 2)["0", "b"].status == NEAR_DUPLICATE, low


def test_nsfw_labels_follow_the_thresholds():
    thresholds = NsfwThresholds(nsfw=0.6, low=0.3)
    assert [thresholds.label(s) for s in (0.0, 0.29, 0.3, 0.59, 0.6, 1.0)] == [
        UNLIKELY, UNLIKELY, UNSURE, UNSURE, NSFW, NSFW,
    ]  # fmt: skip


def test_a_stage_file_with_another_schema_fails_naming_file_and_column(tmp_path):
    path = tmp_path / "00000.parquet"
    pq.write_table(pa.table({"key": [1, 2], "caption": ["a", "b"]}), path)
    with pytest.raises(StageSchemaError, match=rf"{path}: column 'key' is int64, expected string"):
        require_columns(path, {"key": pa.string()})
    with pytest.raises(StageSchemaError, match=rf"{path}: no column 'denoised'"):
        require_columns(path, {"caption": pa.string(), "denoised": pa.string()})


def _candidate(key, **fields):
    base = {name: None for name in CANDIDATES_SCHEMA.names}
    return base | {
        "key": key, "shard": "00000", "URL": f"https://example.org/{key}.jpg", "TEXT": "A smiling woman.",
        "sha256": f"{int(key):064x}", "nsfw_score": 0.0, "HEIGHT": 10, "WIDTH": 10, "KEYWORDS": [],
        "face_boxes": [], "face_landmarks": [],
    } | fields  # fmt: skip


def test_split_gives_each_candidate_one_reason_in_order_of_precedence(tmp_path):
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("https://example.org/2.jpg\nhttps://example.org/3.jpg\n")
    candidates = [
        _candidate("1"),
        _candidate("2", image_problem="corrupt_image", nsfw_score=None),  # unreadable before blocklisted
        _candidate("3", nsfw_score=0.9),  # blocklisted before nsfw
        _candidate("4", nsfw_score=0.9, TEXT="x" * 50),  # duplicate before nsfw
        _candidate("5", nsfw_score=0.4, laion_nsfw="NSFW"),  # the source's tag counts in drop mode
        _candidate("6", TEXT="x" * 50),
        _candidate("7", image_problem="missing_from:face_detections", nsfw_score=None),
    ]
    verdicts = {c["key"]: Verdict(KEPT) for c in candidates} | {"4": Verdict(NEAR_DUPLICATE, "00000", "1")}
    policy = ReleasePolicy(NsfwThresholds(0.5, 0.3), "drop", read_blocklist(blocklist), text_chars=(1, 40))
    released, excluded = split_release(candidates, verdicts, policy)
    assert released.column("key").to_pylist() == ["1"] and released.schema.equals(RELEASE_SCHEMA)
    assert {r["key"]: (r["reason"], r["duplicate_of"]) for r in excluded.to_pylist()} == {
        "2": ("image_unreadable", None), "3": ("blocklisted", None), "4": ("near_duplicate", "1"),
        "5": ("nsfw", None), "6": ("text_length_out_of_bounds", None), "7": ("missing_upstream", None),
    }  # fmt: skip
    tagged, _ = split_release(candidates[:1] + candidates[4:5], verdicts, ReleasePolicy(NsfwThresholds(0.5, 0.3), "tag", Blocklist()))
    assert tagged.column("NSFW").to_pylist() == ["UNLIKELY", "UNSURE"]
    assert tagged.column("laion_nsfw").to_pylist() == [None, "NSFW"]


def test_empty_and_non_empty_release_files_load_in_datasets_duckdb_pandas_and_pyarrow(tmp_path):
    """A shard may release nothing; its file, written by the one Parquet writer, must load
    beside the others wherever a user loads the release (issue 19 item 9: datasets failed with
    'BatchSize must be greater than 0' on a row group of 0 rows)."""
    import duckdb
    import pandas as pd
    import pyarrow.dataset as pads
    from datasets import load_dataset

    from flip_assets.core.io.storage import write_table

    policy = ReleasePolicy(NsfwThresholds(0.5, 0.3), "tag", Blocklist())
    released, _ = split_release([_candidate("1"), _candidate("2")], {"1": Verdict(KEPT), "2": Verdict(KEPT)}, policy)
    folder = tmp_path / "flip_release"
    empty = write_table(folder / "00000.parquet", RELEASE_SCHEMA.empty_table())  # first: its row group set the batch size
    full = write_table(folder / "00001.parquet", released)
    files = [str(empty), str(full)]

    dataset = load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert dataset.num_rows == 2 and dataset.column_names == RELEASE_SCHEMA.names
    assert sorted(dataset["key"]) == ["1", "2"]
    for path, rows in ((empty, 0), (full, 2)):
        assert duckdb.execute("SELECT count(*) FROM read_parquet($f)", {"f": str(path)}).fetchone()[0] == rows
        frame = pd.read_parquet(path)
        assert len(frame) == rows and list(frame.columns) == RELEASE_SCHEMA.names
        table = pq.read_table(path)
        assert table.num_rows == rows and table.schema.equals(RELEASE_SCHEMA)
    assert duckdb.execute("SELECT count(*) FROM read_parquet($f)", {"f": files}).fetchone()[0] == 2
    assert pads.dataset(str(folder)).to_table().num_rows == 2


def test_every_release_column_is_described_in_the_file_the_ui_and_the_asset_definition(tmp_path):
    """The release's column descriptions live beside its schema (RELEASE_SCHEMA's field
    metadata): the written Parquet carries them, the materialization's column schema (what the
    UI's Columns section shows) reads them from it, and the asset declares them before any run."""
    from flip_assets.core.io.storage import write_table
    from flip_assets.core.release.release import AIGC_RELEASE_SCHEMA
    from flip_assets.defs.release.assets import flip_release
    from flip_assets.defs.storage import table_metadata

    policy = ReleasePolicy(NsfwThresholds(0.5, 0.3), "tag", Blocklist())
    released, _ = split_release([_candidate("1")], {"1": Verdict(KEPT)}, policy)
    for schema, table in ((RELEASE_SCHEMA, released), (AIGC_RELEASE_SCHEMA, AIGC_RELEASE_SCHEMA.empty_table())):
        path = write_table(tmp_path / f"{len(schema)}.parquet", table)
        columns = table_metadata(path, partitioned=True)["dagster/column_schema"].schema.columns
        assert [c.name for c in columns] == schema.names
        assert not [c.name for c in columns if not (c.description or "").strip()], "columns without a description"
    declared = flip_release.specs_by_key[flip_release.keys_by_output_name["flip_release"]].metadata["dagster/column_schema"]
    written = table_metadata(tmp_path / f"{len(RELEASE_SCHEMA)}.parquet", partitioned=True)["dagster/column_schema"]
    # (Parquet names a list's item `element`: the type strings of nested columns differ.)
    assert [(c.name, c.description) for c in declared.schema.columns] == [(c.name, c.description) for c in written.schema.columns]
