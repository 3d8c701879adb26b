"""The ablation of paper Table 8 in miniature, and Table 9's fixed scorer.

Sources. Three pair sets of one size n, trained from the same initialisation with the same step
budget, so that only the data differs: the curated release of the people-photo shards (the
`released` pairs of released_pairs; the AIGC release's generated images are not of the shards),
the same number of raw pairs of the same shards drawn at random (the data before curation), and
the same number of CelebA label captions. n is the release's size (or a smaller cap): the
release is the scarce source. The draws are fixed by a seed, the same for every training seed,
so seeds vary the initialisation and batch order only.

Scorer (Table 9). A CLIP score ranks sources only if the scorer saw none of them: a model trained
on a source has memorised its pairs (73 pairs are learnt to a loss near 0 in 40 steps). The
scorer is one dual encoder of the same configuration and budget, trained once on the pool of
pairs in no source: the other raw pairs of the shards and as many CelebA pairs not drawn. Its
bias: it learns what a matching pair is from uncurated web captions and CelebA label captions in
equal parts, so it rewards captions that name visible things in those two styles; curated
captions are closer to the raw style than to CelebA's. Every image it trained on must be outside
every scored pair, judged by the SHA-256 of the image bytes (held_out_facts).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The sources, in the order of the tables.
RELEASED, RAW, CELEBA = "released", "raw", "celeba"
SOURCES = (RELEASED, RAW, CELEBA)
# The released_pairs rows cut from the shards (released_aigc rows are generated images).
RELEASED_FROM_SHARDS = "released"


def image_hashes(pairs: pa.Table) -> set[str]:
    """Every SHA-256 that names a pair's image: of the stored bytes (recomputed) and the stored
    `sha256` column (the source file's bytes, for shard pairs), as the pair assets' leak check does."""
    return {hashlib.sha256(b).hexdigest() for b in pairs.column("image").to_pylist()} | set(pairs.column("sha256").to_pylist())


def sample_pairs(pairs: pa.Table, n: int, seed: int, exclude: set[str] = frozenset()) -> pa.Table:
    """n rows of pairs (all of them if it has fewer), a fixed pseudo-random choice by seed among
    the rows whose image's SHA-256 is not in exclude, in the table's order."""
    images, stored = pairs.column("image").to_pylist(), pairs.column("sha256").to_pylist()
    allowed = [i for i, (b, h) in enumerate(zip(images, stored)) if h not in exclude and hashlib.sha256(b).hexdigest() not in exclude]
    chosen = allowed if len(allowed) <= n else sorted(random.Random(seed).sample(allowed, n))
    return pairs.take(pa.array(chosen, pa.int64()))


@dataclass
class AblationSources:
    """The pairs of each source (n each), the scorer's training pool, and what was drawn from what."""

    pairs: dict[str, pa.Table]
    scorer_pool: pa.Table
    facts: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return min(t.num_rows for t in self.pairs.values())


def ablation_sources(released: pa.Table, raw: pa.Table, celeba: pa.Table, seed: int, cap: int = 0) -> AblationSources:
    """The three sources of one size n = the release's shard pairs (at most cap; 0: no cap), and
    the scorer's pool: the raw pairs of no source plus as many CelebA pairs of no source."""
    shard_release = released.filter(pc.equal(released["source"], RELEASED_FROM_SHARDS))
    n = shard_release.num_rows if not cap else min(cap, shard_release.num_rows)
    if n == 0:
        raise ValueError(
            "the release holds no pair of the shards (released_pairs has no 'released' row): the ablation has no "
            "curated source to compare; materialize flip_release and released_pairs on shards with released samples"
        )  # fmt: skip
    pairs = {
        RELEASED: sample_pairs(shard_release, n, seed),
        RAW: sample_pairs(raw, n, seed),
        CELEBA: sample_pairs(celeba, n, seed),
    }
    short = {s: t.num_rows for s, t in pairs.items() if t.num_rows < n}
    if short:
        raise ValueError(f"sources with fewer than the release's {n} pairs: {short}; the sources must be of one size")
    used = set().union(*(image_hashes(t) for t in pairs.values()))
    raw_rest = sample_pairs(raw, raw.num_rows, seed, exclude=used)
    celeba_rest = sample_pairs(celeba, raw_rest.num_rows, seed, exclude=used)
    columns = ["sha256", "caption", "image"]
    pool = pa.concat_tables([raw_rest.select(columns), celeba_rest.select(columns)])
    facts = {
        "pairs_per_source": n,
        "release_shard_pairs": shard_release.num_rows,
        "release_generated_pairs_left_out": released.num_rows - shard_release.num_rows,
        "raw_pairs": raw.num_rows,
        "celeba_pairs": celeba.num_rows,
        "raw_drawn_also_released": len(image_hashes(pairs[RAW]) & image_hashes(pairs[RELEASED])),
        "scorer_raw_pairs": raw_rest.num_rows,
        "scorer_celeba_pairs": celeba_rest.num_rows,
    }
    return AblationSources(pairs, pool, facts)


def held_out_facts(scorer_pool: pa.Table, scored: dict[str, pa.Table]) -> dict:
    """The fact Table 9's blocking check judges: images (SHA-256 of the bytes) the scorer trained
    on that are among the pairs it scores."""
    scored_hashes = set().union(*(image_hashes(t) for t in scored.values())) if scored else set()
    return {"scorer_images_in_scored_pairs": len(image_hashes(scorer_pool) & scored_hashes)}


def clip_scores(model, tokenizer, pairs: pa.Table, cache_dir, device) -> np.ndarray:
    """Per pair: 100 x the cosine of its image and caption under the model, at least 0 (CLIP score)."""
    from flip_assets.core.evaluation.face_benchmarks import ImageSet, embed_images, embed_texts

    images = embed_images(model, ImageSet("pairs", "scored", pairs.column("image").to_pylist()), cache_dir, device)
    texts = embed_texts(model, tokenizer, pairs.column("caption").to_pylist(), device)
    return np.maximum((images * texts).sum(1), 0) * 100


def median_perplexity(captions: list[str], scorer) -> tuple[float, int]:
    """(median perplexity of the captions the language model could score, how many it scored)."""
    scores = [p for p in scorer.score_many(captions) if p is not None]
    return (float(np.median(scores)) if scores else float("nan")), len(scores)


def data_quality_rows(clip: dict[str, np.ndarray], perplexity: dict[str, tuple[float, int]]) -> list[dict]:
    """Table 9 per source: the fixed scorer's CLIP score (mean over the source's pairs, with its
    standard error: the pairs of two sources are different items, so no paired interval) and
    the captions' median perplexity."""
    rows = []
    for source, scores in clip.items():
        error = float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else float("nan")
        value, scored = perplexity[source]
        rows.append({
            "source": source, "pairs": len(scores), "clip_score": round(float(scores.mean()), 2),
            "clip_score_standard_error": round(error, 2), "median_perplexity": round(value, 1), "captions_scored": scored,
        })  # fmt: skip
    return rows


# --- the comparisons (intervals from uncertainty.gain_interval: one bootstrap for the project) -----

# (A, B) pairs of sources whose difference A - B the ablation reports on every task.
SOURCE_CONTRASTS = ((RELEASED, RAW), (RELEASED, CELEBA))


def verdict(interval, better: str, worse: str) -> str:
    """What an interval of (better - worse), positive meaning `better` is better, lets one say."""
    if interval.low > 0:
        return f"{better} better"
    if interval.high < 0:
        return f"{worse} better"
    return "no difference shown (interval includes 0)"


def ablation_comparisons(trained: dict[str, list], init: list, baselines: list, resamples: int = 1000, seed: int = 0) -> list[dict]:
    """Per task (every task of the init model's scores), one row per comparison: each source
    against the best of the baselines and the initial model (best re-chosen per resample), and
    the SOURCE_CONTRASTS between sources; each with the estimate, its paired bootstrap interval
    (items by cluster and seeds, the same draws for both sides) and the verdict. trained maps a
    source to its TaskScores (seeds stacked, seed i from the same initialisation as init's seed
    i); baselines are the seedless baselines of the same items."""
    from flip_assets.core.evaluation.uncertainty import gain_interval

    by_key = lambda scores: {s.key: s for s in scores}  # noqa: E731
    sources = {source: by_key(scores) for source, scores in trained.items()}
    rows = []
    for key, initial in by_key(init).items():
        table, task, metric = key
        floor = [initial, *(b for b in baselines if b.key == key)]
        line = {"table": table, "task": task, "metric": metric}
        for source, scores in sources.items():
            interval = gain_interval(scores[key], floor, resamples, seed)
            rows.append(line | {
                "comparison": f"{source} - best baseline", "mean": round(scores[key].value, 4), "difference": round(interval.estimate, 4),
                "low": round(interval.low, 4), "high": round(interval.high, 4), "best_baseline": interval.best_baseline,
                "verdict": verdict(interval, source, interval.best_baseline),
            })  # fmt: skip
        for better, worse in SOURCE_CONTRASTS:
            if better in sources and worse in sources:
                interval = gain_interval(sources[better][key], [sources[worse][key]], resamples, seed)
                rows.append(line | {
                    "comparison": f"{better} - {worse}", "mean": round(sources[better][key].value, 4), "difference": round(interval.estimate, 4),
                    "low": round(interval.low, 4), "high": round(interval.high, 4), "best_baseline": "", "verdict": verdict(interval, better, worse),
                })  # fmt: skip
    return rows


def means_over_seeds(init: list, trained: dict[str, list], baselines: list) -> list[dict]:
    """Per task: the initial model's and each source's mean over seeds, and each baseline's value."""
    lines: dict[tuple, dict] = {}
    for name, scores in (("init", init), *trained.items(), *((b.model, [b]) for b in baselines)):
        for s in scores:
            lines.setdefault(s.key, {"task": s.task, "metric": s.metric})[name] = round(s.value, 4)
    return list(lines.values())


def check_facts(comparisons: list[dict], sources: list[str]) -> dict:
    """What the ablation's checks judge: the sources that beat the best baseline on no task (their
    interval's lower bound above 0 nowhere), and the tasks where the release is better or worse
    than the same number of raw pairs (interval above or below 0)."""
    beats = {s: [r["task"] for r in comparisons if r["comparison"] == f"{s} - best baseline" and r["low"] > 0] for s in sources}
    contrast = [r for r in comparisons if r["comparison"] == f"{RELEASED} - {RAW}"]
    return {
        "sources_beating_no_baseline": sum(not tasks for tasks in beats.values()),
        "tasks_beating_best_baseline": beats,
        "release_better_than_raw_on": [r["task"] for r in contrast if r["low"] > 0],
        "release_worse_than_raw_on": [r["task"] for r in contrast if r["high"] < 0],
        "contrasted_tasks": len(contrast),
    }
