"""The ablation's sources (one size, different data), Table 9's held-out scorer pool, and the
interval verdicts, on small synthetic tables and per-item arrays (fast)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flip_assets.core.evaluation.ablation import (
    CELEBA, RAW, RELEASED, ablation_sources, held_out_facts, image_hashes, sample_pairs,
)  # fmt: skip
from flip_assets.core.training.training_pairs import PAIR_SCHEMA, sha256


def pairs(source: str, names: list[str]) -> pa.Table:
    """Pairs whose image bytes are their names (distinct names, distinct SHA-256s)."""
    rows = [{"source": source, "sample_id": n, "sha256": sha256(n.encode()), "caption": f"caption {n}", "template": source, "image": n.encode()} for n in names]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)


RAW_PAIRS = pairs("raw_shards", [f"shard-{i}" for i in range(40)])
# The release: 6 of the raw shard images (curated captions) and 2 generated ones.
RELEASED_PAIRS = pa.concat_tables([pairs("released", [f"shard-{i}" for i in (1, 5, 9, 13, 17, 21)]), pairs("released_aigc", ["gen-0", "gen-1"])])  # fmt: skip
CELEBA_PAIRS = pairs("celeba", [f"celeba-{i}" for i in range(100)])


def test_sampling_is_fixed_by_its_seed_in_table_order_and_skips_excluded_images():
    first, again, other = (sample_pairs(CELEBA_PAIRS, 10, seed) for seed in (0, 0, 1))
    assert first.equals(again) and not first.equals(other) and first.num_rows == 10
    ids = first.column("sample_id").to_pylist()
    assert ids == sorted(ids, key=lambda s: int(s.split("-")[1]))
    excluded = image_hashes(first)
    assert not image_hashes(sample_pairs(CELEBA_PAIRS, 50, 0, exclude=excluded)) & excluded
    assert sample_pairs(CELEBA_PAIRS, 500, 0).num_rows == 100  # all, when fewer than asked


def test_sources_are_of_the_release_size_and_differ():
    sources = ablation_sources(RELEASED_PAIRS, RAW_PAIRS, CELEBA_PAIRS, seed=0)
    assert {s: t.num_rows for s, t in sources.pairs.items()} == {RELEASED: 6, RAW: 6, CELEBA: 6}
    assert set(sources.pairs[RELEASED].column("source").to_pylist()) == {"released"}  # generated images left out
    assert sources.facts["pairs_per_source"] == 6 and sources.facts["release_generated_pairs_left_out"] == 2
    released, raw, celeba = (image_hashes(sources.pairs[s]) for s in (RELEASED, RAW, CELEBA))
    assert raw != released and not celeba & (raw | released)
    assert ablation_sources(RELEASED_PAIRS, RAW_PAIRS, CELEBA_PAIRS, seed=0, cap=4).size == 4


def test_the_scorer_pool_holds_no_scored_image_and_the_check_counts_a_planted_one():
    sources = ablation_sources(RELEASED_PAIRS, RAW_PAIRS, CELEBA_PAIRS, seed=0)
    pool = sources.scorer_pool
    used = len(image_hashes(sources.pairs[RELEASED]) | image_hashes(sources.pairs[RAW]))  # raw images drawn
    assert pool.num_rows == 2 * (RAW_PAIRS.num_rows - used)  # the other raw pairs and as many CelebA ones
    assert held_out_facts(pool, sources.pairs) == {"scorer_images_in_scored_pairs": 0}
    # A bad pool: one scored pair slipped in under another caption and a wrong stored hash.
    planted = sources.pairs[CELEBA].slice(0, 1).to_pylist()[0] | {"caption": "other words", "sha256": "not-its-hash"}
    bad = pa.concat_tables([pool, pa.Table.from_pylist([planted], schema=PAIR_SCHEMA).select(pool.column_names)])
    assert held_out_facts(bad, sources.pairs) == {"scorer_images_in_scored_pairs": 1}


def test_an_empty_release_fails_loudly_naming_what_to_materialize():
    with pytest.raises(ValueError, match="the release holds no pair of the shards"):
        ablation_sources(pairs("released_aigc", ["gen-0"]), RAW_PAIRS, CELEBA_PAIRS, seed=0)
