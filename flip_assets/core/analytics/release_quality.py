"""Quality measured by looking: the caption classifier on the image-filtered population, and the
release's precision, from labels people (or a reader following the same rule) committed.

Both join committed labels to what the pipeline produced, by sample key and text, so a label
applies only to the text it was given for: a sample whose caption changed since it was labelled
counts as unlabelled, never as checked."""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

# Committed labels (never used for training); how they were made: docs/release-quality.md.
CAPTION_LABELS = Path(str(files("flip_assets") / "face_caption_review_flickr8k.csv"))
RELEASE_VERDICTS_FILE = Path(str(files("flip_assets") / "release_review.csv"))
WILSON_Z = 1.96  # 95 % intervals
# Thresholds at which the classifier's effect on the labelled population is shown, beside the chosen one.
THRESHOLD_SWEEP = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
# The threshold rule (docs/release-quality.md): another threshold is better only when its precision
# (or recall) interval lies wholly above the chosen point's estimate and it keeps this share of the
# yield (or of the precision).
KEEP_AT_LEAST = 0.9
RELEASE_VERDICTS = ("yes", "no")
RELEASE_FAILURE_KINDS = (
    "no_face_description", "face_not_visible", "caption_contradicts_image",
    "denoising_changed_meaning", "not_a_real_face", "other",
)  # fmt: skip


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion: sound at 0 or all successes and for small n, where
    the normal approximation gives intervals outside [0, 1]."""
    if trials == 0:
        return None, None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def read_labels(path: Path, label_column: str, allowed: tuple[str, ...]) -> dict[str, dict]:
    """Rows of a committed label file by key; a missing column, a repeated key or a label outside
    `allowed` fails naming the file and row."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out: dict[str, dict] = {}
    for number, row in enumerate(rows, 2):
        if row.get(label_column) not in allowed:
            raise ValueError(f"{path}:{number}: {label_column}={row.get(label_column)!r}, expected one of {allowed}")
        if row["key"] in out:
            raise ValueError(f"{path}:{number}: key {row['key']} labelled twice")
        out[row["key"]] = row
    return out


@dataclass
class Operating:
    threshold: float | None  # None: the pipeline's own keep decisions, as run
    kept: int
    precision: float | None
    precision_low: float | None
    precision_high: float | None
    recall: float | None
    recall_low: float | None
    recall_high: float | None


def _operating(threshold: float | None, decisions: list[tuple[bool, int]], positives: int) -> Operating:
    tp = sum(1 for kept, y in decisions if kept and y)
    kept = sum(1 for k, _ in decisions if k)
    return Operating(
        threshold, kept,
        tp / kept if kept else None, *wilson_interval(tp, kept),
        tp / positives if positives else None, *wilson_interval(tp, positives),
    )  # fmt: skip


def _labels_this(label: dict | None, sample: dict, text_column: str, text: str) -> bool:
    """Whether a label row was given for this very sample and text."""
    return label is not None and label.get("shard", sample["shard"]) == sample["shard"] and label[text_column] == text


def classifier_on_population(
    samples: list[dict], labels: dict[str, dict], sweep: tuple[float, ...] = THRESHOLD_SWEEP
) -> tuple[list[Operating], dict]:
    """Precision and recall of the caption classifier against the labels: first as the pipeline
    ran (its `kept`), then for `text_score > t` along the sweep. samples: the face-detected samples
    (shard, key, caption, text_score, kept) of the labelled keys. Returns the operating points and
    the coverage: labelled, stale (labelled for another caption or shard), positives."""
    scored = [
        (s["text_score"], bool(s["kept"]), int(labels[s["key"]]["label"]))
        for s in samples if _labels_this(labels.get(s["key"]), s, "caption", s["caption"])
    ]  # fmt: skip
    positives = sum(y for *_, y in scored)
    points = [_operating(None, [(kept, y) for _, kept, y in scored], positives)]
    points += [_operating(t, [(score > t, y) for score, _, y in scored], positives) for t in sorted(sweep)]
    return points, {"labelled": len(scored), "stale": len(samples) - len(scored), "positives": positives}


def release_precision(released: list[dict], verdicts: dict[str, dict], without_verdict: dict) -> dict:
    """Share of released pairs whose caption describes a face visible in the image, over the pairs
    with a verdict for their released text; failure kinds counted. released: the released pairs
    (shard, key, TEXT) whose keys have a verdict; without_verdict: {unchecked, examples} of those
    whose keys have none. A verdict for another text or shard counts as none."""
    checked = [verdicts[r["key"]] for r in released if _labels_this(verdicts.get(r["key"]), r, "released_caption", r["TEXT"])]
    stale = sorted(r["key"] for r in released if not _labels_this(verdicts.get(r["key"]), r, "released_caption", r["TEXT"]))
    good = sum(v["verdict"] == "yes" for v in checked)
    low, high = wilson_interval(good, len(checked))
    unchecked = without_verdict["unchecked"] + len(stale)
    return {
        "released": len(released) + without_verdict["unchecked"],
        "checked": len(checked),
        "unchecked": unchecked,
        "unchecked_examples": sorted([*stale, *(without_verdict["examples"] or [])])[:20],
        "good": good,
        "precision": good / len(checked) if checked else None,
        "precision_low": low,
        "precision_high": high,
        "failure_kinds": dict(Counter(v["failure_kind"] for v in checked if v["verdict"] != "yes").most_common()),
    }


def better_thresholds(points: list[Operating]) -> list[dict]:
    """The sweep points the threshold rule prefers to the pipeline's own (points[0]); empty means
    the threshold stays."""
    chosen, better = points[0], []
    if chosen.precision is None or chosen.recall is None:
        return better
    for p in points[1:]:
        if p.precision is None or p.recall is None:
            continue
        if p.precision_low > chosen.precision and p.kept >= KEEP_AT_LEAST * chosen.kept:
            better.append({"threshold": p.threshold, "because": "higher precision at nearly the same yield"})
        elif p.recall_low > chosen.recall and p.precision >= KEEP_AT_LEAST * chosen.precision:
            better.append({"threshold": p.threshold, "because": "higher recall at nearly the same precision"})
    return better


def caption_labels() -> dict[str, dict]:
    return read_labels(CAPTION_LABELS, "label", ("0", "1"))


def release_verdicts() -> dict[str, dict]:
    return read_labels(RELEASE_VERDICTS_FILE, "verdict", RELEASE_VERDICTS)


def measure_quality(face_captions: list[dict], labels: dict[str, dict], released: list[dict], verdicts: dict[str, dict], without_verdict: dict) -> dict:
    """Both measures, as JSON-able dicts for the statistics (inputs as the functions above take them)."""
    points, coverage = classifier_on_population(face_captions, labels)
    return {
        "caption_classifier": {"coverage": coverage, "points": [asdict(p) for p in points], "better_thresholds": better_thresholds(points)},
        "release_precision": release_precision(released, verdicts, without_verdict),
    }
