"""The reviewed set of real LAION captions: complete, consistent with how it was drawn."""

import csv
from collections import defaultdict
from pathlib import Path

from flip_assets.core.caption_review import REVIEW_COLUMNS, STRATA, caption_id, draw_sample, split_of

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
