"""The reviewed set of real captions that measures the caption classifier (issue: web captions).

Captions come from the LAION caption corpora, are split into strata by cheap word tests, and a
fixed number is drawn from each stratum with a fixed seed. Each drawn caption carries its
stratum's weight (captions in the stratum / captions reviewed), so precision and recall measured
on the sample estimate those on the whole corpus. The split into dev (model selection,
threshold) and test (reported figures) is by a hash of the caption, so a caption that occurs
twice cannot sit in both.

    python -m flip_assets.core.curation.caption_review sample OUT.csv --corpus LAION_FILES... --keywords WORDS...
    python -m flip_assets.core.curation.caption_review extend OUT.csv --corpus LAION_FILES... [--count person_word=300 other=1050]
    python -m flip_assets.core.curation.caption_review merge OUT.csv   # once OUT.csv is labelled

`flip_assets/face_caption_review.csv` was drawn so, from the two LAION files of the shared
data, with 450 per stratum and the 12 seeds plus the 6 accepted words of the keyword review as
keywords, then labelled by reading each caption against `flip_assets/face_caption_rule.md`.
It was then extended: `extend` (seed 20261130) drew 300 more person-word and 1,050 more other
captions at random from those not yet reviewed; after labelling, `merge` added them and
reweighted every row of those strata. A simple random sample extended by a simple random sample
of the rest is a simple random sample, and so is the reviewed set plus the labelled prefix (in
draw order) of each stratum's extension, which is all `merge` adds: a labeller who stops early
leaves the estimates unbiased, only wider.

Metrics on it are population-weighted: a caption counts with its stratum's weight, and a
caption is accepted when its score is above the threshold (as the pipeline filters).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flip_assets.core.curation.captions import normalized, read_caption_corpus, tokenize
from flip_assets.core.curation.keywords import SEED_WORDS

# Words that name a person or a portrait: captions with them but without a face keyword are
# where most face descriptions without keywords hide ("portrait of Jesse Eisenberg").
PERSON_WORDS = frozenset(
    """portrait portraits headshot headshots selfie closeup close face faces woman women man men
    girl girls boy boys lady ladies guy child children kid kids baby babies toddler teen teenager
    person people actress actor singer model bride groom celebrity businessman businesswoman
    player smiling laughing beard makeup""".split()
)
STRATA = ("face_keyword", "person_word", "other")
REVIEW_COLUMNS = ("caption_id", "split", "stratum", "weight", "caption", "label", "reason")
REVIEW_SPLITS = ("dev", "test")
EXTENSION_COLUMNS = ("caption_id", "split", "stratum", "caption", "label", "reason")
EXTENSION_SEED = 20261130
DEFAULT_REVIEW = Path(__file__).resolve().parents[2] / "face_caption_review.csv"
# The face keywords the face_keyword stratum was drawn with: the seeds and the six words then
# accepted in face_keywords_review.csv. Frozen: a word accepted later must not move reviewed
# captions between strata, or the weights would no longer describe the draw.
REVIEW_KEYWORDS = (*SEED_WORDS, "chin", "confused", "earring", "expression", "eyed", "eyeglass")


def caption_id(caption: str) -> str:
    return hashlib.sha256(normalized(caption).encode("utf-8")).hexdigest()[:16]


def split_of(caption: str, test_share: float = 0.5) -> str:
    return "test" if int(caption_id(caption), 16) % 1000 < test_share * 1000 else "dev"


def stratum_of(caption: str, face_keywords: frozenset[str]) -> str:
    tokens = set(tokenize(caption))
    if tokens & face_keywords:
        return "face_keyword"
    if tokens & PERSON_WORDS:
        return "person_word"
    return "other"


def strata_pools(captions: Iterable[str], face_keywords: Iterable[str]) -> dict[str, list[str]]:
    """The unique non-empty captions of each stratum, in corpus order (the draws rest on it)."""
    keywords = frozenset(k.lower() for k in face_keywords)
    by_stratum: dict[str, list[str]] = {s: [] for s in STRATA}
    seen: set[str] = set()
    for caption in captions:
        if not normalized(caption):
            continue
        cid = caption_id(caption)
        if cid in seen:
            continue
        seen.add(cid)
        by_stratum[stratum_of(caption, keywords)].append(caption)
    return by_stratum


def draw_sample(captions: Iterable[str], face_keywords: Iterable[str], per_stratum: int, seed: int = 7) -> list[dict]:
    """Unique captions drawn per stratum, with their weights; label and reason left blank."""
    by_stratum = strata_pools(captions, face_keywords)
    rng = random.Random(seed)
    rows = []
    for stratum in STRATA:
        pool = by_stratum[stratum]
        drawn = rng.sample(pool, min(per_stratum, len(pool)))
        weight = len(pool) / len(drawn) if drawn else 0.0
        for caption in drawn:
            rows.append(
                {"caption_id": caption_id(caption), "split": split_of(caption), "stratum": stratum,
                 "weight": round(weight, 4), "caption": caption, "label": None, "reason": None}
            )  # fmt: skip
    return rows


def draw_extension(
    captions: Iterable[str], face_keywords: Iterable[str], reviewed_ids: set[str], counts: dict[str, int],
    seed: int = EXTENSION_SEED,
) -> list[dict]:  # fmt: skip
    """More captions to review (EXTENSION_COLUMNS, label and reason blank): `counts[stratum]`
    drawn at random from the stratum's captions not yet reviewed, strata in `counts` order, one
    random generator for all. A simple random sample of the captions left, so the reviewed ones
    plus these are a simple random sample of the stratum, and so is the reviewed set plus any
    prefix of these in draw order (what a labeller who stops early leaves labelled)."""
    by_stratum = strata_pools(captions, face_keywords)
    rng = random.Random(seed)
    rows = []
    for stratum, count in counts.items():
        pool = [c for c in by_stratum[stratum] if caption_id(c) not in reviewed_ids]
        for caption in rng.sample(pool, min(count, len(pool))):
            rows.append(
                {"caption_id": caption_id(caption), "split": split_of(caption), "stratum": stratum, "caption": caption,
                 "label": None, "reason": None}
            )  # fmt: skip
    return rows


def merge_extension(review_rows: Sequence[dict], extension: Sequence[dict]) -> tuple[list[dict], dict[str, int]]:
    """The review rows plus the labelled prefix of each stratum of `extension` (rows in draw
    order; a stratum's rows after its first unlabelled one are left out, so what is added stays
    a random sample), every row of a stratum weighted (captions in the stratum) / (its reviewed
    captions). The stratum sizes are read off the review rows (weight x rows, one weight per
    stratum). Returns the rows and the extension rows added per stratum."""
    sizes: dict[str, float] = {}
    for stratum in STRATA:
        weights = {float(r["weight"]) for r in review_rows if r["stratum"] == stratum}
        if len(weights) != 1:
            raise ValueError(f"stratum {stratum}: expected one weight in the review rows, found {sorted(weights)}")
        sizes[stratum] = weights.pop() * sum(r["stratum"] == stratum for r in review_rows)
    reviewed = {r["caption_id"] for r in review_rows}
    added: dict[str, int] = {s: 0 for s in STRATA}
    stopped: set[str] = set()
    rows = [dict(r) for r in review_rows]
    for row in extension:
        stratum = row["stratum"]
        if stratum not in STRATA:
            raise ValueError(f"extension row of unknown stratum {stratum!r}: {row}")
        if stratum in stopped or str(row["label"]) not in ("0", "1"):
            stopped.add(stratum)
            continue
        if row["caption_id"] in reviewed or row["caption_id"] != caption_id(row["caption"]):
            raise ValueError(f"extension row already reviewed, or its caption_id is not its caption's: {row}")
        reviewed.add(row["caption_id"])
        rows.append({c: row.get(c) for c in REVIEW_COLUMNS} | {"label": int(row["label"]), "split": split_of(row["caption"])})
        added[stratum] += 1
    for stratum in STRATA:
        n = sum(r["stratum"] == stratum for r in rows)
        for r in rows:
            if r["stratum"] == stratum:
                r["weight"] = round(round(sizes[stratum]) / n, 4)
    return rows, added


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
    from flip_assets.core.analytics.plots import figure_png, new_figure

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="draw a new review file")
    sample.add_argument("out", type=Path)
    sample.add_argument("--corpus", type=Path, nargs="+", required=True)
    sample.add_argument("--per-stratum", type=int, default=400)
    sample.add_argument("--keywords", nargs="*", default=list(SEED_WORDS))
    extend = commands.add_parser("extend", help="draw more captions to review, none of them reviewed yet")
    extend.add_argument("out", type=Path)
    extend.add_argument("--review", type=Path, default=DEFAULT_REVIEW)
    extend.add_argument("--corpus", type=Path, nargs="+", required=True)
    extend.add_argument("--keywords", nargs="+", default=list(REVIEW_KEYWORDS), help="as the review file was drawn")
    extend.add_argument("--count", nargs="+", default=["person_word=300", "other=1050"], help="STRATUM=N, in draw order")
    extend.add_argument("--seed", type=int, default=EXTENSION_SEED)
    merge = commands.add_parser("merge", help="add the labelled rows of an extension to the review file, reweighted")
    merge.add_argument("extension", type=Path)
    merge.add_argument("--review", type=Path, default=DEFAULT_REVIEW)
    args = parser.parse_args(argv)
    if args.command == "sample":
        captions = [c for path in args.corpus for c in read_caption_corpus(path)]
        rows = draw_sample(captions, args.keywords, args.per_stratum)
        table = pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.float64() if c == "weight" else pa.string()) for c in REVIEW_COLUMNS]))
        pacsv.write_csv(table, args.out)
    elif args.command == "extend":
        counts = {stratum: int(n) for stratum, n in (item.split("=", 1) for item in args.count)}
        unknown = set(counts) - set(STRATA)
        if unknown:
            parser.error(f"unknown strata {sorted(unknown)}: use {STRATA}")
        captions = [c for path in args.corpus for c in read_caption_corpus(path)]
        reviewed = {r["caption_id"] for r in read_csv_rows(args.review, REVIEW_COLUMNS)}
        rows = draw_extension(captions, args.keywords, reviewed, counts, args.seed)
        write_csv_rows(args.out, rows, EXTENSION_COLUMNS)
    else:
        rows, added = merge_extension(load_review(args.review), read_csv_rows(args.extension, EXTENSION_COLUMNS))
        write_csv_rows(args.review, rows, REVIEW_COLUMNS)
        print(f"added {added} labelled captions of {args.extension}")
        args.out = args.review
    print(f"{len(rows)} captions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
