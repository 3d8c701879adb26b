"""flip_eval_tables' judgement, on per-item arrays (no model): the paired clustered bootstrap,
the beats-the-best-baseline check (it fails for a model that learned nothing and passes for a
real gain), the split check that sees a test image a fit reads, and the zero-shot attribute
split of the CelebA captions."""

from __future__ import annotations

import numpy as np
from conftest import DATA

from flip_assets.core.evaluation.eval_tables import compare, gain_facts
from flip_assets.core.evaluation.face_benchmarks import EvalSuite, ImageSet, fitted_hashes
from flip_assets.core.evaluation.uncertainty import TaskScores, gain_interval
from flip_assets.core.training.training_pairs import SEEN_ATTRIBUTES, UNSEEN_ATTRIBUTES, celeba_pairs, unseen_attribute_facts

ITEMS, SEEDS = 600, 5


def _scores(model: str, values, labels=None, clusters=None, **kw) -> TaskScores:
    values = np.asarray(values, dtype=float)
    items = values.shape[-1]
    return TaskScores(
        "linear_probe", "task", "accuracy", model, values.reshape(-1, items, 1),
        np.zeros(items) if labels is None else labels, np.arange(items) if clusters is None else clusters, **kw,
    )  # fmt: skip


def _right(rng, accuracy: float, seeds: int = SEEDS) -> np.ndarray:
    return (rng.random((seeds, ITEMS)) < accuracy).astype(float)


def _check(lines):
    from flip_assets.defs.evaluation.tables import CHECKS

    return {r.check_name: r for r in CHECKS.results({**gain_facts(lines), "scored_splits_not_test": 0, "test_images_in_fitting_splits": 0, "fits_reading_test_images": {}, "training_images_in_evaluation": 0})}  # fmt: skip


def test_the_gain_check_fails_for_a_model_that_learned_nothing():
    """Trained weights == initial weights: the same per-item answers, seed by seed."""
    rng = np.random.default_rng(0)
    init = _right(rng, 0.7)
    scores = [_scores("init", init), _scores("trained", init.copy()), _scores("majority class", np.full((1, ITEMS), 0.6))]
    lines = compare(scores, resamples=300)
    assert lines[0]["gain"] == 0 and lines[0]["low"] <= 0 <= lines[0]["high"] and lines[0]["verdict"] == "no gain shown"
    result = _check(lines)["trained_beats_best_baseline"]
    assert not result.passed and result.metadata["tasks_without_gain"].value == 1


def test_the_gain_check_passes_for_a_real_gain_over_the_best_baseline():
    rng = np.random.default_rng(1)
    scores = [_scores("init", _right(rng, 0.70)), _scores("trained", _right(rng, 0.80)), _scores("raw pixels", _right(rng, 0.75, 1))]
    lines = compare(scores, resamples=300)
    assert lines[0]["best_baseline"] == "raw pixels" and 0.02 < lines[0]["gain"] < 0.09 and lines[0]["low"] > 0
    assert _check(lines)["trained_beats_best_baseline"].passed


def test_lower_is_better_metrics_gain_when_the_error_falls():
    rng = np.random.default_rng(2)
    errors = lambda mean, seeds: rng.normal(mean, 0.02, (seeds, ITEMS))  # noqa: E731
    trained = _scores("trained", errors(0.10, SEEDS), higher_is_better=False)
    interval = gain_interval(trained, [_scores("mean shape", errors(0.20, 1), higher_is_better=False)], resamples=200)
    assert 0.09 < interval.estimate < 0.11 and interval.excludes_zero


def test_clustered_items_widen_the_interval():
    """Ten faces of one picture answered alike carry the evidence of about one: resampling by
    picture must give a wider interval than resampling faces one by one."""
    rng = np.random.default_rng(3)
    pictures = np.repeat(np.arange(ITEMS // 10), 10)
    gain_per_picture = rng.random(ITEMS // 10) < 0.6
    trained = np.broadcast_to(gain_per_picture[pictures].astype(float), (SEEDS, ITEMS))
    baseline = np.full((1, ITEMS), 0.5)
    width = {}
    for name, clusters in (("faces", np.arange(ITEMS)), ("pictures", pictures)):
        interval = gain_interval(_scores("trained", trained, clusters=clusters), [_scores("chance", baseline, clusters=clusters)], resamples=400)
        width[name] = interval.high - interval.low
    assert width["pictures"] > 2 * width["faces"]


def test_balanced_metric_is_the_mean_class_recall():
    labels = np.array(["a"] * 90 + ["b"] * 10)
    predicted = np.array(["a"] * 100)
    scores = _scores("majority class", (predicted == labels)[None], labels=labels, balanced=True)
    assert scores.value == 0.5 and _scores("x", (predicted == labels)[None]).value == 0.9


def _image_set(name, split, images, **labels):
    return ImageSet(name, split, images, {k: np.asarray(v) for k, v in labels.items()})


def _suite(fer_train_images):
    faces = lambda prefix, n: [f"{prefix}{i}".encode() for i in range(n)]  # noqa: E731
    points = np.zeros((6, 68, 2))
    return EvalSuite(
        celeba=_image_set("celeba", "test", faces("celeba", 3)),
        fer_train=_image_set("fer2013", "train", fer_train_images, expression=["happy"] * len(fer_train_images)),
        fer_test=_image_set("fer2013", "test", faces("fer", 3), expression=["sad"] * 3),
        utk_train=_image_set("utkface", "train", faces("utk-train", 3), race=["White"] * 3),
        utk_test=_image_set("utkface", "test", faces("utk-test", 3), race=["White"] * 3),
        landmarks_train=ImageSet("300w", "train", faces("300w-train", 6), {"points": points}, np.arange(6)),
        landmarks_test=ImageSet("300w", "test", faces("300w-test", 6), {"points": points}, np.arange(6)),
    )


def test_only_test_splits_scored_fails_when_a_fit_reads_a_test_image():
    """The check judges the images each fit reads, so a fitting split holding a test image
    (here FER2013 train with one of FER2013 test's images) fails it."""
    from flip_assets.defs.evaluation.tables import CHECKS, split_facts

    def check(suite):
        facts = {**split_facts(suite, fitted_hashes(suite, 0), set()), "tasks_without_gain": 0, "tasks": 0, "intervals": {}}
        return {r.check_name: r for r in CHECKS.results(facts)}["only_test_splits_scored"]

    clean = _suite([b"fer-train0", b"fer-train1"])
    assert check(clean).passed
    leaked = _suite([b"fer-train0", b"fer1"])
    result = check(leaked)
    assert not result.passed and result.metadata["test_images_in_fitting_splits"].value == 1
    assert result.metadata["fits_reading_test_images"].value == {"FER2013 expression": 1}


def test_celeba_captions_never_name_an_unseen_attribute():
    """The fixed split: 22 attributes captions may name, 18 kept for zero-shot; the captions
    name none of the 18 in any wording, and the check's facts see one that does."""
    assert len(SEEN_ATTRIBUTES) + len(UNSEEN_ATTRIBUTES) == 40 and not set(SEEN_ATTRIBUTES) & set(UNSEEN_ATTRIBUTES)
    captions = celeba_pairs(DATA / "eval" / "celeba_attr.parquet", seed=0, max_samples=600).column("caption").to_pylist()
    assert unseen_attribute_facts(captions)["captions_naming_unseen_attributes"] == 0
    bad = captions[:5] + ["A woman with Spectacles and wavy hair.", "man, no hat"]
    facts = unseen_attribute_facts(bad)
    assert facts["captions_naming_unseen_attributes"] == 2
    assert facts["unseen_attributes_named"] == {"Eyeglasses": 1, "Wavy_Hair": 1, "Wearing_Hat": 1}
    every = celeba_pairs(DATA / "eval" / "celeba_attr.parquet", seed=0, max_samples=200, named=SEEN_ATTRIBUTES + UNSEEN_ATTRIBUTES)
    assert unseen_attribute_facts(every.column("caption").to_pylist())["captions_naming_unseen_attributes"] > 50
