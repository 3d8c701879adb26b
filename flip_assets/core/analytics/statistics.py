"""Dataset statistics over the stage and release files (paper 3.2, Figure 6), computed by DuckDB.

Every shard file is first checked from its Parquet footer alone (present, readable, the columns
the statistics read with the expected types); then one in-memory DuckDB connection gets a view
per stage over the readable files, and the SQL in sql/statistics_*.sql aggregates
them. Only aggregates reach Python, so the cost does not grow with what Python can hold.

A shard file that is missing, rejected by a blocking check or unreadable (half-written) is left
out and listed in `problems`: the statistics say what they lack instead of failing. A file whose
columns are not what the statistics read fails at once, naming the file and every column at
fault (the release's StageSchemaError).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from flip_assets.core.analytics.release_quality import caption_labels, measure_quality, release_verdicts
from flip_assets.core.io import storage
from flip_assets.core.release.release import StageSchemaError

# Paper 3.2: the mean caption length of FLIP-80M and its NSFW share.
PAPER_CAPTION_CHARS, PAPER_CAPTION_WORDS, PAPER_NSFW_SHARE = 85.1, 15.6, 0.054

STRING, INTEGER, FLOAT, BOOL = "string", "integer", "float", "bool"
STRINGS, BOXES = "list<string>", "list<list<float>>"
FACES = "list<struct<score,box,landmarks>>"

# What the statistics, the quality measures and the galleries read of each per-shard stage
# (release_schema: flip_release, release_exclusions).
STATISTICS_COLUMNS: dict[str, dict[str, str]] = {
    "raw_shards": {
        "key": STRING, "status": STRING, "caption": STRING,
        "tar_path": STRING, "image_offset": INTEGER, "image_size": INTEGER, "image_sha256": STRING,
    },
    "face_detections": {"key": STRING, "kept": BOOL, "drop_reason": STRING, "best_score": FLOAT, "faces": FACES},
    "face_text_pairs": {"key": STRING, "kept": BOOL, "caption": STRING, "text_score": FLOAT},
    "denoised_captions": {"key": STRING, "denoised": STRING},
    "flip_release": {
        "key": STRING, "TEXT": STRING, "original_caption": STRING, "KEYWORDS": STRINGS,
        "HEIGHT": INTEGER, "WIDTH": INTEGER, "NSFW": STRING, "laion_nsfw": STRING,
        "face_count": INTEGER, "face_boxes": BOXES, "face_score": FLOAT, "text_score": FLOAT,
    },
    "release_exclusions": {"key": STRING, "reason": STRING},
    "released_face_demographics": {
        "key": STRING, "face_index": INTEGER, "age": FLOAT, "gender": STRING, "race": STRING, "error": STRING,
    },
}  # fmt: skip
# The funnel's stages in order (release_schema.md; counted by statistics_funnel.sql).
FUNNEL = ("raw", "downloaded", "face", "face_text", "denoised", "released")
RELEASE_STAGES = ("flip_release", "release_exclusions")
TOTAL = "total"  # the funnel's row over all shards


@dataclass
class Inventory:
    """The readable file of each (stage, shard), and what is wrong with the others."""

    shards: list[str]
    files: dict[str, dict[str, Path]] = field(default_factory=dict)  # stage -> shard -> path
    problems: list[dict] = field(default_factory=list)  # {stage, shard, problem}


def _kind(t: pa.DataType) -> str:
    """The family of an Arrow type, so that int32 and int64, string and large_string both pass."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return STRING
    if pa.types.is_integer(t):
        return INTEGER
    if pa.types.is_floating(t):
        return FLOAT
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"list<{_kind(t.value_type)}>"
    if pa.types.is_struct(t):
        return f"struct<{','.join(field.name for field in t)}>"
    return str(t)


def _schema_errors(schema: pa.Schema, wanted: dict[str, str]) -> list[str]:
    errors = []
    for name, kind in wanted.items():
        index = schema.get_field_index(name)
        if index < 0:
            errors.append(f"lacks column {name!r} ({kind})")
        elif (found := _kind(schema.field(index).type)) != kind:
            errors.append(f"column {name!r} is {schema.field(index).type} ({found}), expected {kind}")
    return errors


def take_inventory(home: Path, shards: list[str]) -> Inventory:
    """Check every (stage, shard) file from its footer. Raises StageSchemaError naming the file
    (and every column at fault) when one has columns other than those the statistics read."""
    inventory = Inventory(sorted(shards))
    for stage in STATISTICS_COLUMNS:
        inventory.files[stage] = {}
        for shard in inventory.shards:
            path = storage.partition_path(home, stage, shard)
            try:
                storage.require_file(path)
                with pq.ParquetFile(path) as parquet:
                    schema = parquet.schema_arrow
            except storage.InputRejected as e:
                inventory.problems.append({"stage": stage, "shard": shard, "problem": f"rejected: {e}"})
                continue
            except FileNotFoundError:
                staged = bool(storage.staged_files(path))
                problem = "missing (a staged file exists: its run did not finish)" if staged else "missing"
                inventory.problems.append({"stage": stage, "shard": shard, "problem": problem})
                continue
            except (OSError, pa.ArrowException) as e:  # a half-written or corrupt file
                inventory.problems.append({"stage": stage, "shard": shard, "problem": f"unreadable: {e}"})
                continue
            if errors := _schema_errors(schema, STATISTICS_COLUMNS[stage]):
                raise StageSchemaError(f"{path}: unexpected schema for {stage}: {'; '.join(errors)}")
            inventory.files[stage][shard] = path
    return inventory


STATISTICS_ARROW_TYPES = {
    STRING: pa.string(), INTEGER: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_(),
    STRINGS: pa.list_(pa.string()), BOXES: pa.list_(pa.list_(pa.float32())),
    FACES: pa.list_(pa.struct([("score", pa.float32()), ("box", pa.list_(pa.float32())), ("landmarks", pa.list_(pa.float32()))])),
}  # fmt: skip


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(inventory: Inventory) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per stage over its readable files (only the columns read,
    plus `file_shard`, the shard the file belongs to), and a table `stage_files`: for every shard
    counted, whether each stage's file is present. A stage without any readable file is an empty
    table of the same columns."""
    con = duckdb.connect(":memory:")
    present = {stage: pa.array([shard in by_shard for shard in inventory.shards]) for stage, by_shard in inventory.files.items()}
    con.register("stage_files", pa.table({"shard": pa.array(inventory.shards, pa.string()), **present}))
    for stage, by_shard in inventory.files.items():
        columns = STATISTICS_COLUMNS[stage]
        if by_shard:
            paths = ", ".join(_literal(str(p)) for p in by_shard.values())
            names = ", ".join(f'"{c}"' for c in columns)
            con.execute(
                f"CREATE VIEW {stage} AS SELECT {names}, regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS file_shard "
                f"FROM read_parquet([{paths}], filename = true)"
            )
        else:
            empty = pa.table({**{c: pa.array([], STATISTICS_ARROW_TYPES[k]) for c, k in columns.items()}, "file_shard": pa.array([], pa.string())})
            con.register(stage, empty)
    return con


def _rows(con: duckdb.DuckDBPyConnection, sql_name: str, **params) -> list[dict]:
    cursor = con.execute(storage.sql_file(sql_name), params or None)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _counts(histogram: dict | None, name: str, count: str) -> list[dict]:
    """A DuckDB histogram (a map, null over no rows) as rows in key order."""
    return [{name: key, count: value} for key, value in sorted((histogram or {}).items())]


DEMOGRAPHIC_ATTRIBUTES = ("age_group", "gender", "race", "not_estimated")


@dataclass
class DatasetStatistics:
    shards: list[str]
    problems: list[dict]
    funnel: list[dict]  # per shard then a 'total' row: the FUNNEL counts (null: that file is missing)
    captions: dict
    caption_words: list[dict]  # histogram: words (capped), samples
    keywords: list[dict]  # keyword, samples, share
    faces_per_image: list[dict]
    face_sizes: list[dict]
    face_size_summary: dict
    image_sizes: list[dict]
    image_size_summary: dict
    safety: dict
    exclusions: list[dict]
    nsfw_values: list[dict]
    demographics: dict[str, list[dict]]  # DEMOGRAPHIC_ATTRIBUTES -> [{value, faces}]
    race_test_accuracy: float | None  # of race_classifier on UTKFace's test split; None before it ran
    quality: dict  # measured by looking (release_quality.measure_quality): classifier P/R, release precision

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> DatasetStatistics:
        return cls(**json.loads(text))

    def check_facts(self) -> dict:
        """What the dataset_statistics checks judge: funnel rows where a stage has more samples
        than the one before it, shares outside [0, 1], shards whose release files are missing,
        shards whose released + excluded samples are not their denoised captions, and released
        pairs without a verdict by looking for their text (the release precision leaves them out)."""
        increases = []
        for row in self.funnel:
            present = [(stage, row[stage]) for stage in FUNNEL if row[stage] is not None]
            increases += [
                f"{row['shard']}: {before} {a} < {after} {b}" for (before, a), (after, b) in zip(present, present[1:]) if b > a
            ]
        shares = {
            **{name: self.safety[name] for name in ("nsfw_share", "released_nsfw_share", "duplicate_share", "laion_agreement")},
            **{f"keyword {row['keyword']}": row["share"] for row in self.keywords},
        }
        not_adding_up = [
            row["shard"] for row in self.funnel
            if row["shard"] != TOTAL and None not in (row["denoised"], row["released"], row["excluded"])
            and row["released"] + row["excluded"] != row["denoised"]
        ]  # fmt: skip
        return {
            "funnel_increases": increases,
            "shares_out_of_range": sorted(name for name, share in shares.items() if not 0.0 <= share <= 1.0),
            "release_files_missing": [p for p in self.problems if p["stage"] in RELEASE_STAGES],
            "shards_not_adding_up": not_adding_up,
            "released_pairs_unchecked": self.quality["release_precision"]["unchecked_examples"],
        }


def _race_test_accuracy(home: Path) -> float | None:
    path = storage.partition_path(home, "race_classifier")
    if not path.is_file():
        return None
    rows = storage.query(storage.sql_file("race_classifier_test_accuracy.sql"), path=str(path))
    return rows[0]["recall"] if rows else None


def _quality(con: duckdb.DuckDBPyConnection) -> dict:
    """The measures by looking; only the labelled samples reach Python."""
    labels, verdicts = caption_labels(), release_verdicts()
    return measure_quality(
        _rows(con, "quality_face_captions.sql", keys=list(labels)), labels,
        _rows(con, "quality_released.sql", keys=list(verdicts)), verdicts,
        _rows(con, "quality_released_unchecked.sql", keys=list(verdicts))[0],
    )


def compute_statistics(home: Path, shards: list[str]) -> DatasetStatistics:
    """Every statistic of the release of these shards, from the files under home."""
    inventory = take_inventory(Path(home), shards)
    con = connect(inventory)
    try:
        captions = _rows(con, "statistics_captions.sql")[0]
        face_sizes = _rows(con, "statistics_face_sizes.sql")[0]
        image_sizes = _rows(con, "statistics_image_sizes.sql")[0]
        demographics = _rows(con, "statistics_demographics.sql")[0]
        return DatasetStatistics(
            shards=inventory.shards,
            problems=inventory.problems,
            funnel=_rows(con, "statistics_funnel.sql"),
            captions=captions,
            caption_words=_counts(captions.pop("word_histogram"), "words", "samples"),
            keywords=_rows(con, "statistics_keywords.sql"),
            faces_per_image=_rows(con, "statistics_faces_per_image.sql"),
            face_sizes=_counts(face_sizes.pop("side_histogram"), "side_from", "faces"),
            face_size_summary=face_sizes,
            image_sizes=_counts(image_sizes.pop("side_histogram"), "side_from", "images"),
            image_size_summary=image_sizes,
            safety=_rows(con, "statistics_safety.sql")[0],
            exclusions=_rows(con, "statistics_exclusions.sql"),
            nsfw_values=_rows(con, "statistics_nsfw_values.sql"),
            demographics={a: _counts(demographics[a], "value", "faces") for a in DEMOGRAPHIC_ATTRIBUTES},
            race_test_accuracy=_race_test_accuracy(Path(home)),
            quality=_quality(con),
        )
    finally:
        con.close()
