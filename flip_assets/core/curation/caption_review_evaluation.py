"""The caption classifier measured on the reviewed captions (caption_review.py): the threshold
chosen on the dev split, dev and test at it, and the confusion table and PR curves the UI shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flip_assets.core.curation.caption_review import REVIEW_SPLITS
from flip_assets.core.curation.operating_points import (
    OperatingPoint,
    bootstrap_interval,
    choose_threshold,
    weighted_point,
    weighted_pr_curve,
)


@dataclass(frozen=True)
class ReviewEvaluation:
    """A classifier on the reviewed captions: the threshold chosen on dev and why, the dev and
    test operating points there (test with its bootstrap interval), and both PR curves."""

    threshold: float
    why: str
    dev: OperatingPoint
    test: OperatingPoint
    test_interval: dict[str, tuple[float, float]]
    dev_curve: list[OperatingPoint]
    test_curve: list[OperatingPoint]


def evaluate_review(rows: Sequence[dict], scores: Sequence[float], min_precision: float | None = None) -> ReviewEvaluation:
    """Choose the threshold on the dev rows (choose_threshold's rule), then measure the test rows
    at it; test never influences the choice. `scores` are the classifier's, in the order of `rows`."""
    if len(rows) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(rows)} reviewed captions")
    parts = {}
    for split in REVIEW_SPLITS:
        index = [i for i, row in enumerate(rows) if row["split"] == split]
        if not any(rows[i]["label"] == 1 for i in index):
            raise ValueError(f"the reviewed {split} split has no face caption: precision and recall are undefined")
        parts[split] = ([scores[i] for i in index], [rows[i]["label"] for i in index], [rows[i]["weight"] for i in index],
                        [rows[i]["stratum"] for i in index])  # fmt: skip
    dev_curve = weighted_pr_curve(*parts["dev"][:3])
    chosen, why = choose_threshold(dev_curve, min_precision)
    return ReviewEvaluation(
        threshold=chosen.threshold,
        why=why,
        dev=chosen,
        test=weighted_point(*parts["test"][:3], chosen.threshold),
        test_interval=bootstrap_interval(*parts["test"], chosen.threshold),
        dev_curve=dev_curve,
        test_curve=weighted_pr_curve(*parts["test"][:3]),
    )


def confusion_rows(evaluation: ReviewEvaluation) -> list[dict]:
    """Per split, at the chosen threshold: the reviewed captions in each cell (raw) and the
    captions of the corpus they stand for (population-weighted)."""
    rows = []
    for split, point in (("dev", evaluation.dev), ("test", evaluation.test)):
        raw = dict(zip(("tp", "fp", "fn", "tn"), point.counts))
        rows.append({"split": split, "count": "reviewed captions", **raw})
        rows.append({"split": split, "count": "population-weighted", **{k: round(getattr(point, k), 1) for k in raw}})
    return rows


def curve_png(evaluation: ReviewEvaluation, target: tuple[float, float] | None = None) -> bytes:
    """The population-weighted precision-recall curves of both splits as a PNG, the chosen
    operating point marked on each, and the (precision, recall) target as dotted lines."""
    from flip_assets.core.io.plots import figure_png, new_figure

    figure, axes = new_figure()
    for split, curve, point in (("dev", evaluation.dev_curve, evaluation.dev), ("test", evaluation.test_curve, evaluation.test)):
        (line,) = axes.plot([p.recall for p in curve], [p.precision for p in curve], label=f"{split} split")
        axes.plot([point.recall], [point.precision], "o", color=line.get_color())
    if target:
        axes.axhline(target[0], color="grey", linestyle=":", label="target")
        axes.axvline(target[1], color="grey", linestyle=":")
    axes.set(
        xlabel="recall (population-weighted)", ylabel="precision (population-weighted)", xlim=(0, 1.02), ylim=(0, 1.02),
        title=f"reviewed captions; dots: threshold {evaluation.threshold:.3f} (chosen on dev)",
    )  # fmt: skip
    axes.legend(loc="lower left")
    return figure_png(figure)
