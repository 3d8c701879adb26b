"""Per-item scores of a model on a task, and paired, clustered bootstrap intervals of a gain.

A table cell (an accuracy, a balanced accuracy, an NME) is a function of per-item outcomes:
TaskScores keeps those outcomes (per seed, per item, per column), the items' labels and their
cluster ids, so the cell can be recomputed on any resample of items and seeds.

gain_interval resamples, B times and *paired* (the same draw for every model):
- items by cluster: clusters (an identity, a subject, a picture) are drawn with replacement and
  each drawn cluster brings all its items; where the data carries no identity (CelebA's,
  UTKFace's and FER2013's files have none) every item is its own cluster;
- seeds: seed indices drawn with replacement, the same indices for every model with that many
  seeds (trained seed i is paired with init seed i); a baseline with one seed (pixels, majority,
  chance, a frozen feature extractor) keeps it.
The gain of each resample is the trained model's metric minus the *best baseline's on that
resample* (signed so that positive is better), so choosing the best baseline is inside the
interval. The interval is the percentile interval of the B gains.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


@dataclass
class TaskScores:
    """One model's per-item outcome on one task (all tasks of evaluate() return one of these).

    values: (seeds, items, columns) float: per seed, item and column the item's score: 1.0 / 0.0
      for a right / wrong answer (an expected correctness such as 1 / classes for chance), or
      an error such as the face's NME. A model without seeds has one.
    labels: (items, columns) the class of each item in each column; a balanced metric averages
      over these classes (constant when the metric is not balanced).
    clusters: (items,) cluster ids; the items of one cluster are resampled together.
    balanced: the metric is the mean over columns of the mean over classes of the class's mean
      value (balanced accuracy, mean class recall); otherwise the mean over items and columns.
    predictions: (seeds, items, columns) what the model answered, where that is a class (for
      reading; the metric uses values).
    """

    table: str
    task: str
    metric: str
    model: str
    values: np.ndarray
    labels: np.ndarray
    clusters: np.ndarray
    balanced: bool = False
    higher_is_better: bool = True
    predictions: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim == 1:
            self.values = self.values[None, :, None]
        elif self.values.ndim == 2:
            self.values = self.values[None]
        self.labels = np.asarray(self.labels)
        if self.labels.ndim == 1:
            self.labels = self.labels[:, None]
        self.clusters = np.asarray(self.clusters)
        seeds, items, columns = self.values.shape
        if self.labels.shape != (items, columns) or self.clusters.shape != (items,):
            raise ValueError(f"{self.task} / {self.model}: values {self.values.shape}, labels {self.labels.shape}, clusters {self.clusters.shape} do not match")  # fmt: skip

    @property
    def seeds(self) -> int:
        return self.values.shape[0]

    @property
    def items(self) -> int:
        return self.values.shape[1]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.table, self.task, self.metric

    @property
    def value(self) -> float:
        """The metric over every item, averaged over seeds."""
        return _Metric(self).value(np.ones(self.items), np.ones(self.seeds))

    def per_column(self) -> list[float]:
        """The metric of each column alone (e.g. each attribute's balanced accuracy), over seeds."""
        return [replace(self, values=self.values[:, :, c : c + 1], labels=self.labels[:, c : c + 1]).value for c in range(self.values.shape[2])]

    def per_seed(self) -> list[float]:
        metric = _Metric(self)
        return [metric.value(np.ones(self.items), np.eye(self.seeds)[s]) for s in range(self.seeds)]


def stack_seeds(runs: list[TaskScores], model: str | None = None) -> TaskScores:
    """The runs of one model over several seeds (same task and items) as one TaskScores."""
    first = runs[0]
    if any(r.key != first.key or r.items != first.items for r in runs):
        raise ValueError("stack_seeds: runs of different tasks or items")
    predictions = None if any(r.predictions is None for r in runs) else np.concatenate([r.predictions for r in runs])
    return replace(first, model=model or first.model, values=np.concatenate([r.values for r in runs]), predictions=predictions)


class _Metric:
    """A TaskScores' metric as a function of item weights (bootstrap counts, (B, items)) and
    seed weights ((B, seeds)), for B resamples at once. Every metric here is a mean over columns
    of per-class means (a plain mean: one class per column), so it is linear algebra on the
    per-seed class totals W @ Z_s, Z_s[i, bin] = the item's value when it is in that class."""

    def __init__(self, scores: TaskScores):
        self.scores = scores
        seeds, items, columns = scores.values.shape
        self.columns = columns
        codes, offset, per_column = [], 0, []
        for c in range(columns):
            code = np.unique(scores.labels[:, c], return_inverse=True)[1].ravel() if scores.balanced else np.zeros(items, int)
            codes.append(code + offset)
            per_column.append(code.max() + 1 if items else 1)
            offset += per_column[-1]
        self.bins = offset
        self.column_of_bin = np.repeat(np.arange(columns), per_column)
        member = np.zeros((items, self.bins))
        for c in range(columns):
            member[np.arange(items), codes[c]] = 1.0
        self.member = member  # (items, bins): which class of each column the item is in
        value_in_bin = np.stack([scores.values[s][:, self.column_of_bin] for s in range(seeds)])  # (seeds, items, bins)
        self.valued = value_in_bin * member[None]

    def values(self, item_weights: np.ndarray, seed_weights: np.ndarray) -> np.ndarray:
        """The metric on each of B resamples: item_weights (B, items), seed_weights (B, seeds)."""
        counts = item_weights @ self.member  # (B, bins)
        per_seed = np.stack([item_weights @ v for v in self.valued], axis=1)  # (B, seeds, bins)
        totals = np.einsum("bs,bsk->bk", seed_weights / seed_weights.sum(1, keepdims=True), per_seed)
        seen = counts > 0  # a class no drawn item has is left out, as it would be on such a test set
        means = np.where(seen, totals / np.where(seen, counts, 1), 0.0)
        per_column = np.stack([means[:, self.column_of_bin == c].sum(1) / np.maximum(seen[:, self.column_of_bin == c].sum(1), 1) for c in range(self.columns)], axis=1)  # fmt: skip
        return per_column.mean(1)

    def value(self, item_weights: np.ndarray, seed_weights: np.ndarray) -> float:
        return float(self.values(item_weights[None], seed_weights[None])[0])


@dataclass(frozen=True)
class Interval:
    """A gain (positive is better) of the trained model over the best baseline, with its interval."""

    estimate: float
    low: float
    high: float
    best_baseline: str
    resamples: int
    level: float

    @property
    def excludes_zero(self) -> bool:
        """The whole interval lies above zero: the trained model beats every baseline."""
        return self.low > 0


def _draws(scores: list[TaskScores], resamples: int, seed: int):
    """(item weights (B, items), {seeds: seed weights (B, seeds)}), the same for every model."""
    clusters = scores[0].clusters
    if any(s.items != len(clusters) or not np.array_equal(s.clusters, clusters) for s in scores):
        raise ValueError(f"{scores[0].task}: the models were scored on different items")
    _, cluster_of_item = np.unique(clusters, return_inverse=True)
    n_clusters = cluster_of_item.max() + 1
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_clusters, (resamples, n_clusters))
    cluster_weights = np.zeros((resamples, n_clusters))
    np.add.at(cluster_weights, (np.arange(resamples)[:, None], drawn), 1.0)
    seed_weights = {}
    for n in sorted({s.seeds for s in scores}):
        picked = rng.integers(0, n, (resamples, n))
        seed_weights[n] = np.zeros((resamples, n))
        np.add.at(seed_weights[n], (np.arange(resamples)[:, None], picked), 1.0)
    return cluster_weights[:, cluster_of_item], seed_weights


def gain_interval(
    trained: TaskScores, baselines: list[TaskScores], resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Interval:
    """The trained model's metric minus the best baseline's (signed: positive is better), over
    every item and seed, and its paired bootstrap interval (module docstring): items resampled
    by cluster, seeds resampled, the best baseline chosen again on each resample."""
    if not baselines:
        raise ValueError(f"{trained.task}: no baseline to compare with")
    sign = 1.0 if trained.higher_is_better else -1.0
    models = [trained, *baselines]
    metrics = [_Metric(s) for s in models]

    def gains(item_weights, seed_weights) -> tuple[np.ndarray, np.ndarray]:
        values = sign * np.stack([m.values(item_weights, seed_weights[m.scores.seeds]) for m in metrics])  # (models, B)
        return values[0] - values[1:].max(0), values[1:].argmax(0)

    full = {s.seeds: np.ones((1, s.seeds)) for s in models}
    estimate, best = gains(np.ones((1, trained.items)), full)
    item_weights, seed_weights = _draws(models, resamples, seed)
    drawn = np.concatenate([gains(item_weights[i : i + 100], {n: w[i : i + 100] for n, w in seed_weights.items()})[0] for i in range(0, resamples, 100)])  # fmt: skip
    low, high = np.quantile(drawn, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate[0]), float(low), float(high), baselines[int(best[0])].model, resamples, level)
