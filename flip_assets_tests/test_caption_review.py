"""The reviewed set of real LAION captions: complete, consistent with how it was drawn."""

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from flip_assets.core.curation.caption_review import REVIEW_COLUMNS, STRATA, caption_id, load_review, split_of
from flip_assets.core.curation.caption_review_evaluation import evaluate_review
from flip_assets.core.curation.caption_review_sampling import (
    REVIEW_KEYWORDS,
    draw_extension,
    draw_sample,
    merge_extension,
    strata_pools,
)
from flip_assets.core.curation.operating_points import bootstrap_interval, choose_threshold, weighted_point, weighted_pr_curve
from flip_assets.core.curation.captions import read_caption_corpus
from flip_assets.core.curation.keywords import SEED_WORDS
from flip_assets.core.curation.keywords import load_review as load_keyword_review

REVIEW = Path(__file__).resolve().parents[1] / "flip_assets" / "face_caption_review.csv"


def test_review_file_is_complete_and_split_by_caption():
    with REVIEW.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == REVIEW_COLUMNS
        rows = list(reader)
    assert len(rows) >= 1000
    assert len({r["caption_id"] for r in rows}) == len(rows)
    weights = defaultdict(set)
    for r in rows:
        assert r["label"] in ("0", "1"), r
        assert r["caption_id"] == caption_id(r["caption"])
        assert r["split"] == split_of(r["caption"])
        weights[r["stratum"]].add(r["weight"])
    # One weight per stratum: the population estimates rest on it.
    assert set(weights) == set(STRATA) and all(len(w) == 1 for w in weights.values())
    positives = {s: sum(r["label"] == "1" for r in rows if r["split"] == s) for s in ("dev", "test")}
    assert min(positives.values()) >= 20, positives


def test_draw_sample_weights_and_duplicates():
    captions = ["A smiling woman", "a smiling woman ", "Portrait of a man", "Red car", "Blue car", "Green car"]
    rows = draw_sample(captions, ["smiling"], per_stratum=2, seed=1)
    by_stratum = defaultdict(list)
    for r in rows:
        by_stratum[r["stratum"]].append(r)
    assert len(by_stratum["face_keyword"]) == 1  # the two spellings are one caption
    assert len(by_stratum["person_word"]) == 1
    assert [r["weight"] for r in by_stratum["other"]] == [1.5, 1.5]  # 3 captions, 2 drawn


# Four reviewed captions, hand-computable: weights 1, 2, 3, 4; positives at 0.9 and 0.3.
SCORES, LABELS, WEIGHTS = [0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0], [1.0, 2.0, 3.0, 4.0]


def test_weighted_point_counts_each_caption_with_its_weight():
    point = weighted_point(SCORES, LABELS, WEIGHTS, 0.5)
    assert (point.tp, point.fp, point.fn, point.tn) == (1, 2, 3, 4)
    assert point.counts == (1, 1, 1, 1)
    assert point.precision == pytest.approx(1 / 3)
    assert point.recall == pytest.approx(1 / 4)
    assert point.f1 == pytest.approx(2 / 7)
    # Unweighted these would be 0.5 and 0.5: the weights are what the estimate rests on.
    # A score equal to the threshold is rejected, as the pipeline filters (score > threshold).
    assert weighted_point(SCORES, LABELS, WEIGHTS, 0.9).counts == (0, 0, 2, 2)


def test_weighted_pr_curve_points_and_their_thresholds():
    curve = weighted_pr_curve(SCORES, LABELS, WEIGHTS)
    assert [round(p.threshold, 6) for p in curve[:4]] == [0.9, 0.85, 0.55, 0.2]
    assert curve[-1].threshold < 0.1 and curve[-1].threshold == pytest.approx(0.1)
    assert [p.precision for p in curve] == pytest.approx([1, 1, 1 / 3, 4 / 6, 0.4])
    assert [p.recall for p in curve] == pytest.approx([0, 0.25, 0.25, 1, 1])
    assert [p.f1 for p in curve] == pytest.approx([0, 0.4, 2 / 7, 0.8, 8 / 14])
    # Each point's threshold accepts exactly that point's captions.
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 200) / 20  # many ties
    labels, weights = rng.integers(0, 2, 200), rng.choice([1.0, 4.3, 39.2], 200)
    curve = weighted_pr_curve(scores, labels, weights)
    assert len(curve) == len(set(scores)) + 1
    for p in curve:
        again = weighted_point(scores, labels, weights, p.threshold)
        assert again.counts == p.counts
        assert [again.tp, again.fp, again.fn, again.tn] == pytest.approx([p.tp, p.fp, p.fn, p.tn])


def test_choose_threshold_rules():
    curve = weighted_pr_curve(SCORES, LABELS, WEIGHTS)
    point, why = choose_threshold(curve)
    assert point.threshold == pytest.approx(0.2) and "F1" in why
    point, why = choose_threshold(curve, min_precision=0.9)
    assert point.threshold == pytest.approx(0.85) and "precision >= 0.90" in why
    # No point with recall above 0 reaches the precision: highest F1, and the reason says so.
    curve = weighted_pr_curve([0.9, 0.1], [0, 1], [1.0, 1.0])
    point, why = choose_threshold(curve, min_precision=0.6)
    assert point.recall == 1 and point.precision == 0.5 and why.startswith("no threshold reaches")
    with pytest.raises(ValueError, match="no operating points"):
        choose_threshold([])


def test_load_review_reads_the_repo_file_and_fails_on_a_broken_row(tmp_path):
    rows = load_review(REVIEW)
    assert len(rows) >= 1000 and {r["label"] for r in rows} == {0, 1}
    assert all(isinstance(r["weight"], float) and r["weight"] > 0 for r in rows)
    header = ",".join(REVIEW_COLUMNS)
    good = f"{caption_id('A smiling woman')},{split_of('A smiling woman')},face_keyword,1.5,A smiling woman,1,"
    (tmp_path / "ok.csv").write_text(f"{header}\n{good}\n")
    assert load_review(tmp_path / "ok.csv")[0]["weight"] == 1.5
    for broken, message in (
        (good.replace(",1,", ",,"), "label must be 0 or 1"),
        (good.replace("1.5", "0"), "weight must be a positive number"),
        (good.replace("face_keyword", "faces"), "stratum must be one of"),
        (good.replace(",A smiling", ",The smiling"), "caption_id is not the caption's"),
    ):
        (tmp_path / "bad.csv").write_text(f"{header}\n{good}\n{broken}\n")
        with pytest.raises(ValueError, match=f"bad.csv line 3: {message}"):
            load_review(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_review(tmp_path / "missing.csv")


def test_bootstrap_interval_resamples_within_strata():
    # Perfectly separated scores: every resample has precision and recall 1.
    scores, labels = [0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]
    interval = bootstrap_interval(scores, labels, [1, 1, 5, 5], ["a", "a", "b", "b"], 0.5, samples=200)
    assert interval == {"precision": (1.0, 1.0), "recall": (1.0, 1.0)}
    # One wrong acceptance in a heavy stratum: precision varies with how often it is drawn.
    scores, labels = [0.9, 0.8, 0.7, 0.1, 0.1, 0.1], [1, 1, 0, 0, 0, 0]
    strata, weights = ["a", "a", "b", "b", "b", "b"], [1, 1, 10, 10, 10, 10]
    low, high = bootstrap_interval(scores, labels, weights, strata, 0.5, samples=500, seed=1)["precision"]
    point = weighted_point(scores, labels, weights, 0.5).precision
    assert low < point < high == 1.0
    assert bootstrap_interval(scores, labels, weights, strata, 0.5, samples=500, seed=1)["precision"] == (low, high)


def test_evaluate_review_chooses_on_dev_and_measures_test_there():
    def row(split, label, stratum="other", weight=2.0):
        return {"split": split, "label": label, "stratum": stratum, "weight": weight}

    rows = [row("dev", 1), row("dev", 0), row("dev", 1), row("test", 1), row("test", 0), row("test", 1)]
    scores = [0.9, 0.6, 0.7, 0.8, 0.95, 0.2]
    result = evaluate_review(rows, scores)
    # Dev: accepting 0.9 and 0.7 (threshold halfway to 0.6) is perfect; test is measured there.
    assert result.threshold == pytest.approx(0.65) and result.dev.f1 == 1.0
    assert result.test.counts == (1, 1, 1, 0)
    assert (result.test.precision, result.test.recall) == (0.5, 0.5)
    assert len(result.test_curve) == 4 and set(result.test_interval) == {"precision", "recall"}
    with pytest.raises(ValueError, match="5 scores for 6"):
        evaluate_review(rows, scores[:5])
    with pytest.raises(ValueError, match="test split has no face caption"):
        evaluate_review([row("dev", 1), row("test", 0)], [0.5, 0.5])


def test_draw_extension_is_reproducible_and_excludes_reviewed_captions():
    captions = [f"Red car number {i}" for i in range(40)] + [f"A woman in a park, photo {i}" for i in range(30)]
    reviewed = {caption_id(c) for c in captions[:10] + captions[40:45]}
    counts = {"person_word": 8, "other": 12}
    rows = draw_extension(captions, ["smile"], reviewed, counts, seed=5)
    assert rows == draw_extension(captions, ["smile"], reviewed, counts, seed=5)
    assert rows != draw_extension(captions, ["smile"], reviewed, counts, seed=6)
    assert [r["stratum"] for r in rows] == ["person_word"] * 8 + ["other"] * 12
    assert not reviewed & {r["caption_id"] for r in rows}
    assert len({r["caption_id"] for r in rows}) == 20 and all(r["label"] is None for r in rows)


def test_repo_review_extension_is_the_extend_draw():
    # The extension rows of the review file are draws of `extend` from the shared LAION files.
    corpus = sorted((REVIEW.parents[2] / "shared" / "data" / "laion").glob("*.parquet"))
    rows = load_review(REVIEW)
    original = {r["caption_id"] for r in rows[:1078]}
    captions = [c for path in corpus for c in read_caption_corpus(path)]
    drawn = draw_extension(captions, REVIEW_KEYWORDS, original, {"person_word": 300, "other": 1050})
    assert [r["caption_id"] for r in rows[1078:]] == [r["caption_id"] for r in drawn][: len(rows) - 1078]


def test_review_strata_keep_the_keywords_they_were_drawn_with():
    # Words accepted after the draw (pensive, screaming) are keywords of the pipeline, not of the
    # review: its strata and weights describe the draw, and every reviewed caption's stratum is
    # the one REVIEW_KEYWORDS give it.
    accepted = {w for w, r in load_keyword_review(REVIEW.with_name("face_keywords_review.csv")).items() if r.decision == "accept"}
    assert {"pensive", "screaming"} <= accepted and not {"pensive", "screaming"} & set(REVIEW_KEYWORDS)
    assert set(REVIEW_KEYWORDS) - set(SEED_WORDS) <= accepted
    rows = load_review(REVIEW)
    pools = strata_pools([r["caption"] for r in rows], REVIEW_KEYWORDS)
    assert {r["caption_id"]: r["stratum"] for r in rows} == {caption_id(c): s for s, pool in pools.items() for c in pool}


def test_merge_extension_adds_the_labelled_prefix_and_reweights():
    def row(caption, stratum, weight, label):
        return {"caption_id": caption_id(caption), "split": split_of(caption), "stratum": stratum, "weight": weight,
                "caption": caption, "label": label, "reason": ""}  # fmt: skip

    review = [row("Smiling face", "face_keyword", 1.0, 1), row("A woman", "person_word", 5.0, 0),
              row("Car 1", "other", 10.0, 0), row("Car 2", "other", 10.0, 1)]  # fmt: skip
    extension = [row("A man", "person_word", None, 1), row("Car 3", "other", None, 0),
                 row("Car 4", "other", None, ""), row("Car 5", "other", None, 1)]  # fmt: skip
    merged, added = merge_extension(review, extension)
    # Car 5 follows an unlabelled row: left out, so the added captions stay a random sample.
    assert added == {"face_keyword": 0, "person_word": 1, "other": 1}
    assert [r["caption"] for r in merged] == ["Smiling face", "A woman", "Car 1", "Car 2", "A man", "Car 3"]
    # Stratum sizes (5 and 20 captions) stay; the weights spread them over the reviewed captions.
    assert {r["stratum"]: r["weight"] for r in merged} == {"face_keyword": 1.0, "person_word": 2.5, "other": 6.6667}
    with pytest.raises(ValueError, match="already reviewed"):
        merge_extension(review, [row("Car 1", "other", None, 0)])


def test_review_captions_command_draws_extends_and_merges_a_review_file(tmp_path, capsys):
    """The three commands of `python -m flip_assets.tools.review_captions` on a small corpus, a
    labeller filling in the label column between them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flip_assets.core.curation.caption_review import EXTENSION_COLUMNS, read_csv_rows, write_csv_rows
    from flip_assets.tools.review_captions import main

    corpus = tmp_path / "corpus.parquet"
    captions = [f"{start} {i}" for start in ("Sad eyes of", "Portrait of a man", "Red car") for i in range(6)]
    pq.write_table(pa.table({"caption": captions}), corpus)

    def label(path, columns):
        rows = read_csv_rows(path, columns)
        write_csv_rows(path, [r | {"label": int(r["stratum"] == "face_keyword")} for r in rows], columns)

    review = tmp_path / "review.csv"
    assert main(["sample", str(review), "--corpus", str(corpus), "--per-stratum", "2"]) == 0
    label(review, REVIEW_COLUMNS)
    assert {r["stratum"]: r["weight"] for r in load_review(review)} == {"face_keyword": 3.0, "person_word": 3.0, "other": 3.0}

    extension = tmp_path / "extension.csv"
    assert main(["extend", str(extension), "--review", str(review), "--corpus", str(corpus),
                 "--keywords", *SEED_WORDS, "--count", "person_word=2", "other=1"]) == 0  # fmt: skip
    label(extension, EXTENSION_COLUMNS)
    assert main(["merge", str(extension), "--review", str(review)]) == 0
    rows = load_review(review)
    assert len(rows) == 9 and {r["stratum"]: r["weight"] for r in rows} == {"face_keyword": 3.0, "person_word": 1.5, "other": 2.0}
    assert capsys.readouterr().out.splitlines()[-1] == f"9 captions to {review}"
