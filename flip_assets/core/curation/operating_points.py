"""Population-weighted operating points of a scored, labelled, weighted sample: precision and
recall at a threshold, the precision-recall curve, bootstrap intervals and the threshold rule.

A caption counts with its weight (its stratum's: the captions it stands for), and a caption is
accepted when its score is above the threshold, as the pipeline filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class OperatingPoint:
    """Accept captions scoring above `threshold`: population-weighted precision, recall, F1 and
    confusion weights, and the raw counts of reviewed captions behind them."""

    threshold: float
    precision: float  # 1.0 when nothing is accepted: no wrong acceptance
    recall: float
    f1: float
    tp: float
    fp: float
    fn: float
    tn: float
    counts: tuple[int, int, int, int]  # reviewed captions: tp, fp, fn, tn

    def as_dict(self) -> dict:
        return asdict(self)


def _point(threshold: float, tp: float, fp: float, fn: float, tn: float, counts: tuple[int, int, int, int]) -> OperatingPoint:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return OperatingPoint(float(threshold), precision, recall, f1, float(tp), float(fp), float(fn), float(tn), counts)


def _arrays(scores: Sequence[float], labels: Sequence[int], weights: Sequence[float]):
    s, y, w = np.asarray(scores, np.float64), np.asarray(labels) == 1, np.asarray(weights, np.float64)
    if not len(s) == len(y) == len(w):
        raise ValueError(f"scores, labels and weights differ in length: {len(s)}, {len(y)}, {len(w)}")
    return s, y, w


def weighted_point(scores: Sequence[float], labels: Sequence[int], weights: Sequence[float], threshold: float) -> OperatingPoint:
    """The operating point of one threshold."""
    s, y, w = _arrays(scores, labels, weights)
    kept = s > threshold
    cells = [(kept & y), (kept & ~y), (~kept & y), (~kept & ~y)]
    return _point(threshold, *(w[c].sum() for c in cells), tuple(int(c.sum()) for c in cells))


def weighted_pr_curve(scores: Sequence[float], labels: Sequence[int], weights: Sequence[float]) -> list[OperatingPoint]:
    """One point per distinct score, from accepting nothing to accepting everything. Each point's
    threshold lies halfway between the lowest accepted and the highest rejected score, so that
    `score > threshold` accepts exactly that point's captions, and unseen captions scoring between
    the two fall on the nearer side."""
    s, y, w = _arrays(scores, labels, weights)
    if not len(s):
        return []
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    distinct = np.unique(s)[::-1]  # descending
    # captions accepted when the lowest accepted score is distinct[i]
    ends = np.searchsorted(-s, -distinct, side="right")
    tp_w, fp_w = np.concatenate([[0], np.cumsum(w * y)]), np.concatenate([[0], np.cumsum(w * ~y)])
    tp_n, fp_n = np.concatenate([[0], np.cumsum(y)]), np.concatenate([[0], np.cumsum(~y)])
    pos_w, neg_w, pos_n, neg_n = tp_w[-1], fp_w[-1], tp_n[-1], fp_n[-1]
    lower = np.append(distinct[1:], np.nextafter(distinct[-1], -np.inf))
    thresholds = np.concatenate([[distinct[0]], (distinct + lower) / 2])
    thresholds[-1] = lower[-1]
    curve = []
    for threshold, end in zip(thresholds, np.concatenate([[0], ends])):
        counts = (int(tp_n[end]), int(fp_n[end]), int(pos_n - tp_n[end]), int(neg_n - fp_n[end]))
        curve.append(_point(threshold, tp_w[end], fp_w[end], pos_w - tp_w[end], neg_w - fp_w[end], counts))
    return curve


def bootstrap_interval(
    scores: Sequence[float],
    labels: Sequence[int],
    weights: Sequence[float],
    strata: Sequence[str],
    threshold: float,
    samples: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of weighted precision and recall at a threshold, resampling the
    captions within each stratum as they were drawn. A split holds only a few positives of the
    heavily weighted strata, so one caption more or less moves the estimate by several points."""
    s, y, w = _arrays(scores, labels, weights)
    strata = np.asarray(strata)
    groups = [np.flatnonzero(strata == stratum) for stratum in np.unique(strata)]
    kept = s > threshold
    rng = np.random.default_rng(seed)
    precision, recall = np.empty(samples), np.empty(samples)
    for i in range(samples):
        index = np.concatenate([rng.choice(g, len(g)) for g in groups])
        k, t, v = kept[index], y[index], w[index]
        tp, fp, fn = v[k & t].sum(), v[k & ~t].sum(), v[~k & t].sum()
        precision[i] = tp / (tp + fp) if tp + fp else 1.0
        recall[i] = tp / (tp + fn) if tp + fn else 0.0
    tails = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {name: tuple(float(x) for x in np.percentile(values, tails)) for name, values in (("precision", precision), ("recall", recall))}


def choose_threshold(curve: Sequence[OperatingPoint], min_precision: float | None = None) -> tuple[OperatingPoint, str]:
    """The operating point to filter with, and why (a sentence for the UI). Chosen on the dev
    split only. Rule: with `min_precision`, the point of highest recall whose precision reaches
    it (ties: the higher precision); without it, or when no point with recall above 0 reaches it,
    the point of highest F1 (ties: the higher threshold, which accepts less)."""
    if not curve:
        raise ValueError("no operating points to choose a threshold from: no reviewed captions scored")
    best_f1 = max(curve, key=lambda p: (p.f1, p.threshold))
    if min_precision is None:
        return best_f1, f"highest weighted F1 ({best_f1.f1:.3f}) on the dev split"
    reaching = [p for p in curve if p.precision >= min_precision and p.recall > 0]
    if not reaching:
        return best_f1, (
            f"no threshold reaches weighted precision {min_precision:.2f} on the dev split: "
            f"highest weighted F1 ({best_f1.f1:.3f}) instead"
        )
    point = max(reaching, key=lambda p: (p.recall, p.precision))
    return point, f"highest weighted recall ({point.recall:.3f}) at weighted precision >= {min_precision:.2f} on the dev split"
