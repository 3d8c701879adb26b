"""The web-caption training set of the caption classifier: cues, generated descriptions, and a
balanced set that never holds a reviewed caption."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flip_assets.core.io import storage
from flip_assets.core.curation.caption_classifier import CORPUS_PREFIX, FACE_PAIRS, RAW_SHARDS, CaptionRecord
from flip_assets.core.curation.caption_review import caption_id, load_review
from flip_assets.core.curation.caption_training import (
    DESCRIBED,
    GENERATED,
    HARD_NEGATIVE,
    KEYWORD,
    LABELLED,
    LABELLED_FACE,
    LABELLED_OTHER,
    PERSON_PHOTO,
    PERSON_SCENE,
    RANDOM_NEGATIVE,
    TRAINING_LABEL_COLUMNS,
    WEB_DATASET_SCHEMA,
    WebDatasetSettings,
    build_web_dataset,
    generated_descriptions,
    load_training_labels,
    silver_label,
    training_rounds,
)
from flip_assets.core.curation.keywords import KeywordMatcher

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "data" / "eval"
MATCHER = KeywordMatcher(["smile", "eyes", "earrings"])


@pytest.mark.parametrize(
    "text, expected",
    [
        # listings, titles and graphics with face words: hard negatives
        ("14k White Gold .56ct Diamond Cluster Stud Earrings", (0, HARD_NEGATIVE)),
        ("Eyes Wide Shut (DVD, 1999)", (0, HARD_NEGATIVE)),
        ("Smile icon vector illustration", (0, HARD_NEGATIVE)),
        ("Dog with sad eyes", (0, HARD_NEGATIVE)),
        # the person photos the labelling rule accepts without a keyword
        ("Portrait of a young woman in a blue dress", (1, PERSON_PHOTO)),
        ("Cheerful little girl looking away", (1, PERSON_PHOTO)),
        ("Woman wearing sunglasses on the beach", (1, PERSON_PHOTO)),
        ("Laverne Cox on the red carpet at the 2016 Emmys", (1, PERSON_PHOTO)),
        ("Blue eyes and freckles", (1, KEYWORD)),
        # a person in a scene, a plain caption; a face word without any cue is left out
        ("People walking in a park", (0, PERSON_SCENE)),
        ("Young woman drinking coffee near the window", (0, PERSON_SCENE)),
        ("Red sports car parked by the lake", (0, RANDOM_NEGATIVE)),
        ("Her hair in the wind", (None, "")),
    ],
)
def test_silver_label(text, expected):
    label, role, _ = silver_label(text, MATCHER.find(text))
    assert (label, role) == expected


def test_generated_descriptions_come_from_train_splits_in_several_shapes():
    descriptions = generated_descriptions(EVAL, per_dataset=40, seed=3)
    assert len(descriptions) == 120
    origins = {origin for _, origin in descriptions}
    assert origins == {GENERATED + "celeba_attr", GENERATED + "utkface", GENERATED + "fer2013"}
    openings = {text.split()[0].lower() for text, _ in descriptions}
    assert {"portrait", "headshot", "close-up"} <= openings and len(openings) > 5
    assert descriptions == generated_descriptions(EVAL, per_dataset=40, seed=3)
    with pytest.raises(FileNotFoundError, match="face label file not found"):
        generated_descriptions(EVAL / "missing", per_dataset=1, seed=3)


def test_build_web_dataset_balances_excludes_reviewed_and_accounts_for_every_input():
    corpus = CORPUS_PREFIX + "laion"
    reviewed = "Portrait of a smiling man, reviewed"
    records = [
        CaptionRecord(reviewed, corpus, "laion:r"),
        *[CaptionRecord(f"Portrait of actress number {i}", corpus, f"laion:p{i}") for i in range(20)],
        *[CaptionRecord(f"Gold earrings model {i} for sale", corpus, f"laion:h{i}") for i in range(20)],
        *[CaptionRecord(f"A red car, photo {i}", corpus, f"laion:n{i}") for i in range(100)],
        CaptionRecord("A woman with a big smile", RAW_SHARDS, "k1"),  # no face in its photo
        CaptionRecord("A man with a big smile", FACE_PAIRS, "k2"),
        CaptionRecord("a red car, PHOTO 1", corpus, "laion:dup"),
        CaptionRecord("  ", corpus, "laion:empty"),
    ]
    descriptions = [(f"Headshot of a young woman {i}", GENERATED + "celeba_attr") for i in range(50)]
    settings = WebDatasetSettings(seed=1, generated_share=0.25, hard_negative_share=0.4, negative_rounds=1)
    table, dropped = build_web_dataset(records, MATCHER, {caption_id(reviewed)}, descriptions, settings)
    assert table.schema.equals(WEB_DATASET_SCHEMA)
    rows = table.to_pylist()
    assert len(rows) + sum(dropped.values()) == len(records) + len(descriptions)
    assert dropped["reviewed_caption"] == 1 and dropped["duplicate"] == 1 and dropped["empty_or_too_long"] == 1
    assert dropped["uncertain"] == 1  # the raw caption whose photo showed no face
    assert reviewed not in {r["text"] for r in rows}
    roles = {role: sum(r["role"] == role for r in rows) for role in {r["role"] for r in rows}}
    # 21 real positives (20 portraits, 1 face pair), generated ones topping them up to a quarter.
    assert roles[PERSON_PHOTO] + roles[KEYWORD] == 21 and roles[DESCRIBED] == 7
    assert roles[HARD_NEGATIVE] == round(28 * 0.4) and roles[RANDOM_NEGATIVE] == 28 - round(28 * 0.4)
    for split in ("train", "validation", "test"):
        labels = [r["label"] for r in rows if r["split"] == split]
        assert labels and labels.count(1) == labels.count(0)


def test_negative_rounds_bring_fresh_negatives_each_one_to_one_with_the_positives(tmp_path):
    corpus = CORPUS_PREFIX + "laion"
    records = [
        *[CaptionRecord(f"Portrait of actress number {i}", corpus, f"laion:p{i}") for i in range(20)],
        *[CaptionRecord(f"Gold earrings model {i} for sale", corpus, f"laion:h{i}") for i in range(30)],
        *[CaptionRecord(f"A red car, photo {i}", corpus, f"laion:n{i}") for i in range(62)],
    ]
    settings = WebDatasetSettings(seed=1, generated_share=0.0, hard_negative_share=0.3, negative_rounds=5)
    table, dropped = build_web_dataset(records, MATCHER, set(), [], settings)
    rows = table.to_pylist()
    assert len(rows) + sum(dropped.values()) == len(records)
    # 20 positives, 16 of them for training; 92 negatives allow the 1:1 set (20) and 4 more rounds of 16.
    train = [r for r in rows if r["split"] == "train"]
    assert sum(r["label"] for r in train) == 16 and {r["negative_round"] for r in train if r["label"] == 1} == {0}
    per_round = Counter(r["negative_round"] for r in train if r["label"] == 0)
    assert per_round == {k: 16 for k in range(1, 6)}
    assert {r["negative_round"] for r in rows if r["split"] != "train"} == {0, 1}
    assert len({r["text"] for r in rows}) == len(rows)  # every round's negatives are new captions
    # What train_classifier gets: per round the 16 training positives and that round's 16 negatives.
    rounds = training_rounds(rows)
    assert [sorted(Counter(labels).items()) for _, labels in rounds] == [[(0, 16), (1, 16)]] * 5
    assert [set(texts[:16]) for texts, _ in rounds] == [{r["text"] for r in train if r["label"] == 1}] * 5
    assert [set(texts[16:]) for texts, _ in rounds] == [{r["text"] for r in train if r["negative_round"] == k} for k in range(1, 6)]
    # Each round keeps the shares of roles (30 % hard negatives overall, give or take the shuffle).
    assert 0.15 < sum(r["role"] == HARD_NEGATIVE for r in rows if r["label"] == 0) / 84 < 0.45
    # The blocking check `balanced` reads each round: one negative short in round 3 fails it.
    check = lambda t: storage.query(storage.sql_file("caption_classifier_dataset_checks.sql"), path=str(t))[0]
    pq.write_table(table, tmp_path / "rounds.parquet")
    assert check(tmp_path / "rounds.parquet")["max_split_imbalance"] == 0
    short = next(i for i, r in enumerate(rows) if r["negative_round"] == 3)
    pq.write_table(pa.Table.from_pylist(rows[:short] + rows[short + 1 :], schema=table.schema), tmp_path / "short.parquet")
    assert check(tmp_path / "short.parquet")["max_split_imbalance"] > 0.01
    # Too few negatives for the rounds asked: as many full rounds as they allow.
    table, _ = build_web_dataset(records[:20] + records[50:90], MATCHER, set(), [], WebDatasetSettings(seed=1, generated_share=0.0))
    assert {r["negative_round"] for r in table.to_pylist() if r["label"] == 0} == {1, 2}  # 40 = 20 + 16 + 4 left


def test_hand_labelled_negatives_fill_up_before_random_captions():
    # With plenty of hand-labelled non-faces, the shards' random captions are not needed: they stay
    # out of training, for face_description_test's photos without a face.
    labelled = [(f"Portrait of actress number {i}", 1) for i in range(20)]
    labelled += [(f"Cast iron frying pan model {i}", 0) for i in range(200)]
    records = [CaptionRecord(f"A red car parked on a street {i}", RAW_SHARDS, f"k{i}") for i in range(30)]
    settings = WebDatasetSettings(seed=1, generated_share=0.0)
    table, _ = build_web_dataset(records, MATCHER, set(), [], settings, labelled=labelled)
    rows = table.to_pylist()
    assert sum(r["label"] == 0 for r in rows) == 20 + 4 * 16
    assert not [r for r in rows if r["origin"] == RAW_SHARDS]


def test_hand_labels_override_the_cues():
    corpus = CORPUS_PREFIX + "laion"
    records = [
        CaptionRecord("Jesse Eisenberg and Ruben Fleischer Talk Zombieland", corpus, "laion:1"),  # no cue: a random caption
        CaptionRecord("Portrait of a vintage car", corpus, "laion:2"),  # a portrait cue, but no face
        *[CaptionRecord(f"Portrait of actress number {i}", corpus, f"laion:p{i}") for i in range(10)],
        *[CaptionRecord(f"A red car, photo {i}", corpus, f"laion:n{i}") for i in range(30)],
    ]
    labelled = [("Jesse Eisenberg and Ruben Fleischer Talk Zombieland", 1), ("Portrait of a vintage car", 0),
                ("Reviewed face caption", 1)]  # fmt: skip
    settings = WebDatasetSettings(seed=1, generated_share=0.0, labelled_negative_share=1.0)
    table, dropped = build_web_dataset(records, MATCHER, {caption_id("Reviewed face caption")}, [], settings, labelled=labelled)
    rows = {r["text"]: r for r in table.to_pylist()}
    assert (rows[labelled[0][0]]["label"], rows[labelled[0][0]]["role"]) == (1, LABELLED_FACE)
    assert (rows[labelled[1][0]]["label"], rows[labelled[1][0]]["role"]) == (0, LABELLED_OTHER)
    assert rows[labelled[0][0]]["origin"] == LABELLED
    assert dropped["duplicate"] == 2 and dropped["reviewed_caption"] == 1
    assert len(rows) + sum(dropped.values()) == len(records) + len(labelled)


def test_repo_training_labels_are_read_and_never_reviewed(tmp_path):
    labelled = load_training_labels(REPO / "flip_assets" / "face_caption_training_labels.csv")
    assert len(labelled) >= 1000 and {label for _, label in labelled} == {0, 1}
    reviewed = {caption_id(r["caption"]) for r in load_review(REPO / "flip_assets" / "face_caption_review.csv")}
    # A labelled training caption in the review set would make the dev and test figures lie.
    assert not reviewed & {caption_id(text) for text, _ in labelled}
    header = ",".join(TRAINING_LABEL_COLUMNS)
    (tmp_path / "bad.csv").write_text(f"{header}\n{caption_id('A smiling woman')},other,A smiling woman,yes,\n")
    with pytest.raises(ValueError, match="bad.csv line 2: need a 0/1 label"):
        load_training_labels(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_training_labels(tmp_path / "missing.csv")
