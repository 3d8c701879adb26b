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

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flip_assets.core.analytics.release_quality import (
    CAPTION_LABELS, RELEASE_VERDICTS_FILE, caption_labels, measure_quality, release_verdicts,
)
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
    # The rows the card's galleries show: {"released": [...], "rejections": [...]} (sql/gallery_*.sql)
    galleries: dict = field(default_factory=dict)

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
            "partials_missing_or_stale": [p for p in self.problems if p["stage"] == PARTIAL],
            "shards_not_adding_up": not_adding_up,
            "released_pairs_unchecked": self.quality["release_precision"]["unchecked_examples"],
        }


def _race_test_accuracy(home: Path) -> float | None:
    path = storage.partition_path(home, "race_classifier")
    if not path.is_file():
        return None
    rows = storage.query(storage.sql_file("race_classifier_test_accuracy.sql"), path=str(path))
    return rows[0]["recall"] if rows else None


# --- Per-shard partial aggregates, and their merge -------------------------------------------
#
# A shard's partial (the asset release_statistics_partial) holds, in long rows
# (shard, statistic, value, n, total, detail), everything the statistics need of that shard and
# nothing that does not add up across shards: counts, histogram bins, sums. dataset_statistics
# adds the partials of the registered shards (sql/statistics_merge.sql) and derives means,
# shares and medians from the sums, so its cost grows with the number of distinct values, not of
# rows. A median does not merge: the caption lengths and the image height and width are kept as
# exact value histograms (their medians stay exact); the face side is a real number, kept in
# whole-pixel bins, so its median is the middle of the pixel bin that holds it (within 0.5 px).
#
# Per-shard rows (detail set, or a funnel count) travel as they are: the funnel, the file each
# stage was read from (a footer fingerprint, so that a changed file makes the partial stale),
# the problems of the inventory and the labelled samples of the quality measures.

PARTIAL = "release_statistics_partial"
PARTIAL_SCHEMA = pa.schema([
    ("shard", pa.string()), ("statistic", pa.string()), ("value", pa.string()),
    ("n", pa.int64()), ("total", pa.float64()), ("detail", pa.string()),
])  # fmt: skip
FUNNEL_COUNTS = (*FUNNEL, "excluded")
# The per-shard measures: (SQL file, name); each gives one row per shard: counts, sums, histograms.
PARTIAL_QUERIES = (
    ("statistics_captions.sql", "captions"), ("statistics_face_sizes.sql", "face_sizes"),
    ("statistics_image_sizes.sql", "image_sizes"), ("statistics_keywords.sql", "keywords"),
    ("statistics_faces_per_image.sql", "faces_per_image"), ("statistics_exclusions.sql", "exclusions"),
    ("statistics_nsfw_values.sql", "nsfw_values"), ("statistics_demographics.sql", "demographics"),
    ("statistics_safety.sql", "safety"),
)  # fmt: skip
SAFETY_COUNTS = (
    "released", "released_nsfw", "released_unsure", "laion_tagged", "laion_agrees",
    "excluded", "excluded_nsfw", "duplicates", "blocklisted",
)  # fmt: skip
UNCHECKED_EXAMPLES = 20
RELEASED_SHOWN = 12  # released samples in the card's gallery
REJECTIONS_SHOWN = 4  # of each kind
KEYWORDS_FILE = "face_keywords"  # the informative rejections name a face keyword


def current_keywords(home: Path) -> list[str]:
    """The face keywords of home's face_keywords file (none before it is written)."""
    from flip_assets.core.curation.keywords import used_keywords

    path = storage.partition_path(Path(home), KEYWORDS_FILE)
    return sorted(used_keywords(path)) if path.is_file() else []


def _keywords_fingerprint(keywords: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keywords)).encode()).hexdigest()[:16]


def labels_fingerprint() -> str:
    """Of the committed label files the quality rows were picked by: a partial taken with other
    labels is stale."""
    return "+".join(storage.sha256_of(path)[:16] for path in (CAPTION_LABELS, RELEASE_VERDICTS_FILE))


def _row(shard, statistic, value=None, n=None, total=None, detail=None) -> dict:
    return {"shard": shard, "statistic": statistic, "value": value, "n": n, "total": total, "detail": detail}


def _flatten(name: str, row: dict) -> list[dict]:
    """One per-shard row of a PARTIAL_QUERIES query as long rows: a histogram's bins, a count
    (n) or a sum (total)."""
    out = []
    for column, value in row.items():
        if column == "shard":
            continue
        statistic = f"{name}.{column}"
        if isinstance(value, dict):
            out += [_row(row["shard"], statistic, str(k), int(v)) for k, v in value.items()]
        elif isinstance(value, float):
            out.append(_row(row["shard"], statistic, total=value))
        elif value is not None:
            out.append(_row(row["shard"], statistic, n=int(value)))
    return out


def statistics_partial(home: Path, shards: list[str]) -> pa.Table:
    """The partial aggregates of these shards (one in production: the shard whose release was
    just published), from their files under home, in one DuckDB pass per measure. Raises
    StageSchemaError when a file has other columns than those the statistics read."""
    inventory = take_inventory(Path(home), shards)
    keywords = current_keywords(home)
    con = connect(inventory)
    rows: list[dict] = []
    try:
        for row in _rows(con, "gallery_released.sql", count=RELEASED_SHOWN):
            rows.append(_row(row["shard"], "gallery.released", row.pop("pick"), detail=json.dumps(row)))
        for row in _rows(con, "gallery_rejections.sql", count=REJECTIONS_SHOWN, keywords=keywords):
            rows.append(_row(row["shard"], "gallery.rejection", row["kind"], total=row.pop("nearness"), detail=json.dumps(row)))
        for row in _rows(con, "statistics_funnel.sql"):
            if row["shard"] != TOTAL:
                rows += [_row(row["shard"], f"funnel.{stage}", n=row[stage]) for stage in FUNNEL_COUNTS]
        for sql_name, name in PARTIAL_QUERIES:
            for row in _rows(con, sql_name):
                rows += _flatten(name, row)
        labels, verdicts = caption_labels(), release_verdicts()
        for sample in _rows(con, "quality_face_captions.sql", keys=list(labels)):
            rows.append(_row(sample["shard"], "quality.face_caption", sample["key"], detail=json.dumps(sample)))
        for sample in _rows(con, "quality_released.sql", keys=list(verdicts)):
            rows.append(_row(sample["shard"], "quality.released", sample["key"], detail=json.dumps(sample)))
        for row in _rows(con, "quality_released_unchecked.sql", keys=list(verdicts)):
            rows.append(_row(row["shard"], "quality.unchecked", n=row["unchecked"]))
            rows += [_row(row["shard"], "quality.unchecked_example", key, detail=key) for key in row["examples"] or []]
    finally:
        con.close()
    fingerprint = labels_fingerprint()
    for shard in inventory.shards:
        rows.append(_row(shard, "labels", detail=fingerprint))
        rows.append(_row(shard, "keywords", detail=_keywords_fingerprint(keywords)))
        rows += [
            _row(shard, "input", stage, detail=storage.footer_fingerprint(storage.partition_path(Path(home), stage, shard)))
            for stage in STATISTICS_COLUMNS
        ]  # fmt: skip
    rows += [_row(p["shard"], "problem", p["stage"], detail=p["problem"]) for p in inventory.problems]
    return pa.Table.from_pylist(rows, PARTIAL_SCHEMA)


def _partials_view(con: duckdb.DuckDBPyConnection, partials: pa.Table | list[Path]) -> None:
    """Views over the partials, read by DuckDB as it aggregates (never all in memory at once):
    `partial_files`, every row with `file_shard`, the shard its file is named for; `partials`, the
    rows of each file's own shard."""
    if isinstance(partials, pa.Table):
        con.register("partial_table", partials)
        con.execute("CREATE VIEW partial_files AS SELECT *, shard AS file_shard FROM partial_table")
    elif partials:
        paths = ", ".join(_literal(str(p)) for p in partials)
        con.execute(
            f"CREATE VIEW partial_files AS SELECT shard, statistic, value, n, total, detail, "
            f"regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS file_shard FROM read_parquet([{paths}], filename = true)"
        )
    else:
        con.register("partial_table", PARTIAL_SCHEMA.empty_table())
        con.execute("CREATE VIEW partial_files AS SELECT *, shard AS file_shard FROM partial_table")
    con.execute("CREATE VIEW partials AS SELECT * EXCLUDE (file_shard) FROM partial_files WHERE shard = file_shard")


def stale_partials(home: Path, con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The shards whose partial no longer describes their files (a stage file changed, appeared
    or went since it was taken, the committed labels or the face keywords changed) or whose file
    holds another shard's rows, each with what is wrong."""
    current = {"labels": labels_fingerprint(), "keywords": _keywords_fingerprint(current_keywords(home))}
    what = {"labels": "the committed labels", "keywords": "face_keywords"}
    stale: dict[str, list[str]] = {}
    for row in _rows(con, "statistics_partial_inputs.sql", statistics=["input", *current]):
        if row["statistic"] in current:
            if row["detail"] != current[row["statistic"]]:
                stale.setdefault(row["shard"], []).append(what[row["statistic"]])
        elif storage.footer_fingerprint(storage.partition_path(Path(home), row["value"], row["shard"])) != row["detail"]:
            stale.setdefault(row["shard"], []).append(row["value"])
    foreign = {row["file_shard"]: row["shards"] for row in _rows(con, "statistics_partial_foreign.sql")}
    return [
        {"stage": PARTIAL, "shard": shard, "problem": f"stale: {', '.join(changed)} changed since it was taken"}
        for shard, changed in sorted(stale.items())
    ] + [{"stage": PARTIAL, "shard": shard, "problem": f"holds rows of shards {others}"} for shard, others in sorted(foreign.items())]


def read_partials(home: Path, shards: list[str]) -> tuple[list[Path], list[dict]]:
    """The partial files of these shards under home, and the problems of those missing or
    unreadable (named, and left out of the figures)."""
    paths, problems = [], []
    for shard in sorted(set(shards)):
        path = storage.partition_path(Path(home), PARTIAL, shard)
        try:
            storage.require_file(path)
        except FileNotFoundError:
            problems.append({"stage": PARTIAL, "shard": shard, "problem": "missing: materialize release_statistics_partial"})
            continue
        except storage.InputRejected as e:
            problems.append({"stage": PARTIAL, "shard": shard, "problem": f"rejected: {e}"})
            continue
        if storage.footer_fingerprint(path) == "unreadable":  # a half-written file has no footer
            problems.append({"stage": PARTIAL, "shard": shard, "problem": "unreadable: no Parquet footer"})
            continue
        paths.append(path)
    return paths, problems


def _median(histogram: dict[float, int]) -> float:
    """The median of the values a histogram counts, as DuckDB's median (the mean of the two
    middle values for an even count); 0 for none."""
    total = sum(histogram.values())
    if total == 0:
        return 0
    middle, seen, low = ((total - 1) // 2, total // 2), 0, None
    for value in sorted(histogram):
        count = histogram[value]
        if low is None and seen + count > middle[0]:
            low = value
        if seen + count > middle[1]:
            return (low + value) / 2
        seen += count
    raise AssertionError("unreachable")


def _mean(total: float, count: int) -> float:
    return total / count if count else 0


def merge_statistics(
    partials: pa.Table | list[Path], shards: list[str], home: Path, problems: list[dict] = ()
) -> DatasetStatistics:
    """Every statistic of these shards' release from their partial aggregates (the files of
    read_partials, or a table of statistics_partial); `problems`: the shards whose partial could
    not be read. A stale partial is named and left out."""
    con = duckdb.connect(":memory:")
    try:
        _partials_view(con, partials)
        problems = [*problems, *stale_partials(home, con)]
        refused = {p["shard"] for p in problems if p["stage"] == PARTIAL}
        usable = [s for s in sorted(set(shards)) if s not in refused]
        merged = _rows(con, "statistics_merge.sql", shards=usable)
        per_shard = _rows(con, "statistics_partial_rows.sql", shards=usable)
    finally:
        con.close()
    counts: dict[str, dict] = {}  # statistic -> value -> n (histograms)
    scalars: dict[str, float] = {}  # statistic -> n or total
    for row in merged:
        if row["value"] is None:
            scalars[row["statistic"]] = row["n"] if row["n"] is not None else row["total"]
        else:
            counts.setdefault(row["statistic"], {})[row["value"]] = row["n"]

    def histogram(statistic: str, key=int) -> dict:
        return {key(value): n for value, n in counts.get(statistic, {}).items()}

    def get(statistic: str) -> float:
        return scalars.get(statistic, 0)

    funnel_rows: dict[str, dict] = {}
    quality_rows: dict[str, list[dict]] = {"quality.face_caption": [], "quality.released": []}
    examples, released_picks, rejections = [], [], []
    for row in per_shard:
        statistic, shard = row["statistic"], row["shard"]
        if statistic.startswith("funnel."):
            funnel_rows.setdefault(shard, {"shard": shard})[statistic.removeprefix("funnel.")] = row["n"]
        elif statistic == "problem":
            problems.append({"stage": row["value"], "shard": shard, "problem": row["detail"]})
        elif statistic in quality_rows:
            quality_rows[statistic].append(json.loads(row["detail"]))
        elif statistic == "quality.unchecked_example":
            examples.append(row["detail"])
        elif statistic == "gallery.released":
            released_picks.append((row["value"], json.loads(row["detail"])))
        elif statistic == "gallery.rejection":
            rejections.append((-row["total"], row["value"], json.loads(row["detail"])))
    counted = sorted(set(shards))
    funnel = [funnel_rows.get(s, {"shard": s, **dict.fromkeys(FUNNEL_COUNTS)}) for s in counted]
    funnel.append({"shard": TOTAL, **{
        stage: sum(r[stage] for r in funnel if r[stage] is not None) if any(r[stage] is not None for r in funnel) else None
        for stage in FUNNEL_COUNTS
    }})  # fmt: skip

    chars, words = histogram("captions.chars"), histogram("captions.words")
    captions = {
        "captions": int(get("captions.captions")),
        "mean_chars": _mean(sum(k * v for k, v in chars.items()), sum(chars.values())),
        "mean_words": _mean(sum(k * v for k, v in words.items()), sum(words.values())),
        "median_chars": _median(chars),
        "median_words": _median(words),
        "mean_original_chars": _mean(get("captions.original_chars_sum"), get("captions.original_captions")),
        "mean_original_words": _mean(get("captions.original_words_sum"), get("captions.original_captions")),
    }
    capped_words: dict[int, int] = {}
    for k, v in words.items():
        capped_words[min(k, 40)] = capped_words.get(min(k, 40), 0) + v
    side_pixels = histogram("face_sizes.side_pixels")
    face_size_summary = {
        "faces": int(get("face_sizes.faces")),
        "mean_side": _mean(get("face_sizes.side_sum"), get("face_sizes.sides")),
        "median_side": _median({k + 0.5: v for k, v in side_pixels.items()}),  # the pixel bin's middle
        "mean_area_share": _mean(get("face_sizes.area_share_sum"), get("face_sizes.area_shares")),
    }
    heights, widths = histogram("image_sizes.heights"), histogram("image_sizes.widths")
    image_size_summary = {
        "mean_height": _mean(sum(k * v for k, v in heights.items()), sum(heights.values())),
        "mean_width": _mean(sum(k * v for k, v in widths.items()), sum(widths.values())),
        "median_height": _median(heights),
        "median_width": _median(widths),
        "mean_megapixels": _mean(get("image_sizes.megapixels_sum"), get("image_sizes.images")),
    }
    safety = {name: int(get(f"safety.{name}")) for name in SAFETY_COUNTS}
    candidates = safety["released"] + safety["excluded"]
    safety |= {
        "candidates": candidates,
        "nsfw_share": _mean(safety["released_nsfw"] + safety["excluded_nsfw"], candidates),
        "released_nsfw_share": _mean(safety["released_nsfw"], safety["released"]),
        "duplicate_share": _mean(safety["duplicates"], candidates),
        "laion_agreement": _mean(safety["laion_agrees"], safety["laion_tagged"]),
    }
    released = captions["captions"]
    keywords = sorted(histogram("keywords.keywords", str).items(), key=lambda kv: (-kv[1], kv[0]))
    by_count = lambda items: sorted(items, key=lambda kv: (-kv[1], kv[0]))  # noqa: E731
    labels, verdicts = caption_labels(), release_verdicts()
    unchecked = {"unchecked": int(get("quality.unchecked")), "examples": sorted(examples)[:UNCHECKED_EXAMPLES]}
    return DatasetStatistics(
        shards=counted,
        problems=problems,
        funnel=funnel,
        captions=captions,
        caption_words=_counts(capped_words, "words", "samples"),
        keywords=[{"keyword": k, "samples": n, "share": _mean(n, released)} for k, n in keywords],
        faces_per_image=_counts(histogram("faces_per_image.faces"), "faces", "images"),
        face_sizes=_counts(histogram("face_sizes.side_histogram"), "side_from", "faces"),
        face_size_summary=face_size_summary,
        image_sizes=_counts(histogram("image_sizes.side_histogram"), "side_from", "images"),
        image_size_summary=image_size_summary,
        safety=safety,
        exclusions=[{"reason": k, "samples": n} for k, n in by_count(histogram("exclusions.reasons", str).items())],
        nsfw_values=[{"nsfw": k, "samples": n} for k, n in by_count(histogram("nsfw_values.nsfw", str).items())],
        demographics={a: _counts(histogram(f"demographics.{a}", str), "value", "faces") for a in DEMOGRAPHIC_ATTRIBUTES},
        race_test_accuracy=_race_test_accuracy(Path(home)),
        quality=measure_quality(
            sorted(quality_rows["quality.face_caption"], key=lambda r: (r["shard"], r["key"])), labels,
            sorted(quality_rows["quality.released"], key=lambda r: (r["shard"], r["key"])), verdicts, unchecked,
        ),
        galleries=_galleries(released_picks, rejections),
    )


def _galleries(released_picks: list[tuple], rejections: list[tuple]) -> dict:
    """The first RELEASED_SHOWN released picks by their hash over all shards, and the first
    REJECTIONS_SHOWN rejections of each kind, nearest the line first (ties by key): what the
    gallery queries give over every shard at once."""
    kinds = list(dict.fromkeys(kind for _, kind, _ in sorted(rejections, key=lambda r: r[1] != "face found, caption rejected")))
    shown = []
    for kind in kinds:
        of_kind = sorted((r for r in rejections if r[1] == kind), key=lambda r: (r[0], r[2]["key"]))
        shown += [row for *_, row in of_kind[:REJECTIONS_SHOWN]]
    return {"released": [row for _, row in sorted(released_picks, key=lambda r: r[0])[:RELEASED_SHOWN]], "rejections": shown}


def compute_statistics(home: Path, shards: list[str]) -> DatasetStatistics:
    """Every statistic of the release of these shards straight from their stage files: the
    partial of all of them at once, merged (what the partials of each shard merge to)."""
    return merge_statistics(statistics_partial(home, shards), shards, home)


def statistics_from_partials(home: Path, shards: list[str]) -> DatasetStatistics:
    """Every statistic of the release of these shards from their published partials; a shard
    whose partial is missing, unreadable or stale is named in `problems` and not counted."""
    paths, problems = read_partials(home, shards)
    return merge_statistics(paths, shards, home, problems)
