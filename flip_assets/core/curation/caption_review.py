"""The reviewed set of real captions that measures the caption classifier (issue: web captions):
the file's rows, how a caption is identified and split, and reading and writing the file.

Each row is a caption drawn from the LAION caption corpora in one stratum (caption_review_sampling.py
draws them), with its stratum's weight (captions in the stratum / captions reviewed), so precision
and recall measured on the rows estimate those on the whole corpus (caption_review_evaluation.py),
and a label read against `flip_assets/face_caption_rule.md`. The split into dev (model selection,
threshold) and test (reported figures) is by a hash of the caption, so a caption that occurs twice
cannot sit in both. `python -m flip_assets.tools.review_captions` draws, extends and merges the file.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from flip_assets.core.curation.captions import normalized

STRATA = ("face_keyword", "person_word", "other")
REVIEW_COLUMNS = ("caption_id", "split", "stratum", "weight", "caption", "label", "reason")
REVIEW_SPLITS = ("dev", "test")
EXTENSION_COLUMNS = ("caption_id", "split", "stratum", "caption", "label", "reason")
DEFAULT_REVIEW = Path(__file__).resolve().parents[2] / "face_caption_review.csv"


def caption_id(caption: str) -> str:
    return hashlib.sha256(normalized(caption).encode("utf-8")).hexdigest()[:16]


def split_of(caption: str, test_share: float = 0.5) -> str:
    return "test" if int(caption_id(caption), 16) % 1000 < test_share * 1000 else "dev"


def load_review(path: Path) -> list[dict]:
    """Rows of a labelled review file, label an int and weight a float. Anything that would bias
    the estimates (unlabelled row, unknown split or stratum, weight not positive, a caption_id
    that is not its caption's) fails naming the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"caption review file not found: {path}")
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != REVIEW_COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(REVIEW_COLUMNS)}, found {reader.fieldnames}")
        for row in reader:
            try:
                weight = float(row["weight"])
            except ValueError:
                weight = 0.0
            problem = (
                "label must be 0 or 1" if row["label"] not in ("0", "1")
                else f"split must be one of {REVIEW_SPLITS}" if row["split"] not in REVIEW_SPLITS
                else f"stratum must be one of {STRATA}" if row["stratum"] not in STRATA
                else "weight must be a positive number" if not weight > 0
                else "caption_id is not the caption's" if row["caption_id"] != caption_id(row["caption"])
                else None
            )  # fmt: skip
            if problem:
                raise ValueError(f"{path} line {reader.line_num}: {problem}: {row}")
            rows.append({**row, "weight": weight, "label": int(row["label"])})
    return rows


def read_csv_rows(path: Path, columns: Sequence[str]) -> list[dict]:
    """Rows of a CSV file whose header must be `columns`; fails naming the file otherwise."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != tuple(columns):
            raise ValueError(f"{path}: header must be {','.join(columns)}, found {reader.fieldnames}")
        return list(reader)


def write_csv_rows(path: Path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:g}" if isinstance(v, float) else ("" if v is None else v) for k, v in row.items()})
