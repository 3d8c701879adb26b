"""Quality by looking (issue 21 item 2): intervals, label files that cannot be trusted, and labels
that no longer apply to the text the pipeline produced."""

from __future__ import annotations

import pytest

from flip_assets.core.analytics.release_quality import (
    Operating,
    better_thresholds,
    classifier_on_population,
    read_labels,
    release_precision,
    wilson_interval,
)


def test_wilson_interval_stays_in_the_unit_interval_and_matches_the_formula():
    low, high = wilson_interval(61, 71)
    assert (round(low, 3), round(high, 3)) == (0.760, 0.922)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (None, None)


@pytest.mark.parametrize(
    ("rows", "message"),
    [("key,caption,label\na,x,1\na,y,0\n", "labelled twice"), ("key,caption,label\na,x,2\n", "label='2'"),
     ("key,caption\na,x\n", "label=None")],
)  # fmt: skip
def test_a_label_file_that_cannot_be_trusted_fails_naming_the_row(tmp_path, rows, message):
    path = tmp_path / "labels.csv"
    path.write_text(rows)
    with pytest.raises(ValueError, match=message):
        read_labels(path, "label", ("0", "1"))


def test_a_sample_whose_caption_changed_since_labelling_counts_as_unlabelled():
    labels = {"a": {"caption": "a smiling girl", "label": "1"}, "b": {"caption": "a dog runs", "label": "0"},
              "c": {"caption": "old text", "label": "1"}}  # fmt: skip
    samples = [{"shard": "1", "key": "a", "caption": "a smiling girl", "text_score": 0.99, "kept": True},
               {"shard": "1", "key": "b", "caption": "a dog runs", "text_score": 0.98, "kept": True},
               {"shard": "1", "key": "c", "caption": "new text", "text_score": 0.2, "kept": False}]  # fmt: skip
    points, coverage = classifier_on_population(samples, labels)
    assert coverage == {"labelled": 2, "stale": 1, "positives": 1}
    as_run = points[0]
    assert (as_run.threshold, as_run.kept, as_run.precision, as_run.recall) == (None, 2, 0.5, 1.0)
    strict = next(p for p in points if p.threshold == 0.99)
    assert (strict.kept, strict.precision, strict.recall) == (0, None, 0.0)


def test_release_precision_counts_only_verdicts_on_the_released_text():
    verdicts = {"a": {"released_caption": "A smiling girl.", "verdict": "yes", "failure_kind": ""},
                "b": {"released_caption": "A man climbs.", "verdict": "no", "failure_kind": "no_face_description"},
                "c": {"released_caption": "An older text.", "verdict": "yes", "failure_kind": ""}}  # fmt: skip
    released = [{"shard": "1", "key": k, "TEXT": text} for k, text in (("a", "A smiling girl."), ("b", "A man climbs."), ("c", "A new text."))]
    result = release_precision(released, verdicts, {"unchecked": 2, "examples": ["x", "y"]})
    assert (result["released"], result["checked"], result["unchecked"], result["good"]) == (5, 2, 3, 1)
    assert result["unchecked_examples"] == ["c", "x", "y"]
    assert result["precision"] == 0.5 and result["failure_kinds"] == {"no_face_description": 1}


def _point(threshold, kept, tp, positives=100) -> Operating:
    return Operating(threshold, kept, tp / kept, *wilson_interval(tp, kept), tp / positives, *wilson_interval(tp, positives))


def test_threshold_rule_moves_only_beyond_the_interval():
    chosen = _point(None, 71, 61)
    assert better_thresholds([chosen, _point(0.99, 62, 56), _point(0.5, 81, 67)]) == []
    clearly = _point(0.9, 70, 69)  # precision 0.99, interval above 0.86, 99 % of the yield
    assert better_thresholds([chosen, clearly]) == [{"threshold": 0.9, "because": "higher precision at nearly the same yield"}]
