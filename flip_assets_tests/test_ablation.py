"""The ablation's sources (one size, different data), Table 9's held-out scorer pool, and the
interval verdicts, on small synthetic tables and per-item arrays (fast)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flip_assets.core.evaluation.ablation import (
    CELEBA, RAW, RELEASED, ablation_comparisons, ablation_sources, check_facts, held_out_facts, image_hashes, sample_pairs,
)  # fmt: skip
from flip_assets.core.evaluation.uncertainty import TaskScores
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


def scores(model: str, right: np.ndarray, task: str = "UTKFace gender") -> TaskScores:
    """A task's per-item outcomes (seeds, items) of one model."""
    right = np.atleast_2d(right).astype(float)
    return TaskScores("linear_probe", task, "accuracy", model, right[:, :, None], np.zeros(right.shape[1]), np.arange(right.shape[1]))


def ablation_check_results(trained: dict[str, TaskScores], init: TaskScores, chance: TaskScores) -> dict[str, bool]:
    from flip_assets.defs.evaluation.ablation import CHECKS

    comparisons = ablation_comparisons({s: [t] for s, t in trained.items()}, [init], [chance])
    facts = check_facts(comparisons, list(trained)) | {"scorer_images_in_scored_pairs": 0}
    return {r.check_name: r.passed for r in CHECKS.results(facts)}


ITEMS, SEEDS = 400, 5
rng = np.random.default_rng(0)
INIT = scores("init", rng.random((SEEDS, ITEMS)) < 0.5)
CHANCE = scores("chance", np.full((1, ITEMS), 0.5))


def test_models_that_learned_nothing_fail_the_ablation_checks():
    """0 training steps: every trained model is its initialisation, so no interval of (trained -
    best baseline) lies above 0, and the release cannot beat the raw pairs."""
    checks = ablation_check_results({RELEASED: INIT, RAW: INIT, CELEBA: INIT}, INIT, CHANCE)
    assert checks == {"every_source_beats_best_baseline": False, "release_beats_raw": False, "scorer_held_out": True}


def test_a_genuine_difference_passes_and_the_contrast_says_which_source():
    released = scores("released", rng.random((SEEDS, ITEMS)) < 0.85)
    raw = scores("raw", rng.random((SEEDS, ITEMS)) < 0.7)
    celeba = scores("celeba", rng.random((SEEDS, ITEMS)) < 0.7)
    checks = ablation_check_results({RELEASED: released, RAW: raw, CELEBA: celeba}, INIT, CHANCE)
    assert checks == {"every_source_beats_best_baseline": True, "release_beats_raw": True, "scorer_held_out": True}
    rows = ablation_comparisons({RELEASED: [released], RAW: [raw], CELEBA: [celeba]}, [INIT], [CHANCE])
    contrast = next(r for r in rows if r["comparison"] == "released - raw")
    assert contrast["low"] > 0 and contrast["verdict"] == "released better" and 0.1 < contrast["difference"] < 0.2
    # The same sources swapped: the interval lies below 0 and the verdict names the other source.
    swapped = ablation_comparisons({RELEASED: [raw], RAW: [released]}, [INIT], [CHANCE])
    assert next(r for r in swapped if r["comparison"] == "released - raw")["verdict"] == "raw better"
