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
