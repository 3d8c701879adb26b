"""caption_classifier_dataset, caption_classifier and the independent face-description test."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoModelForSequenceClassification

from conftest import make_text_resources, run_assets
from flip_assets.core.caption_classifier import (
    CORPUS_PREFIX,
    DATASET_SCHEMA,
    FACE_PAIRS,
    RAW_SHARDS,
    CaptionRecord,
    build_dataset,
    classifier_model_dir,
    load_classifier,
    score_texts,
)
from flip_assets.core.face_descriptions import describe, face_description_set
from flip_assets.core.keywords import KeywordMatcher


def test_build_dataset_balances_deduplicates_and_keeps_splits_apart():
    matcher = KeywordMatcher(["smile", "eyes"])
    records = [
        CaptionRecord("A woman with a big smile", FACE_PAIRS, "k1"),
        CaptionRecord("a woman with a big  SMILE", CORPUS_PREFIX + "laion", "laion:0"),  # same caption
        CaptionRecord("A smile on a dog photo", RAW_SHARDS, "k2"),  # keyword, but no face found
        *[CaptionRecord(f"Blue eyes number {i}", CORPUS_PREFIX + "laion", f"laion:{i}") for i in range(1, 40)],
        *[CaptionRecord(f"A red car model {i}", CORPUS_PREFIX + "laion", f"laion:n{i}") for i in range(60)],
        CaptionRecord("   ", RAW_SHARDS, "k3"),
    ]
    rows = build_dataset(records, matcher, max_samples=60, seed=1).to_pylist()
    positives = [r for r in rows if r["label"] == 1]
    negatives = [r for r in rows if r["label"] == 0]
    assert len(positives) == len(negatives) == 30
    assert all(r["keywords"] for r in positives) and not any(r["keywords"] for r in negatives)
    texts = [r["text"].lower() for r in rows]
    assert len(texts) == len(set(texts))
    assert not any(r["source_id"] in ("k2", "laion:0") for r in rows)
    for split in ("train", "validation", "test"):
        labels = [r["label"] for r in rows if r["split"] == split]
        assert labels and labels.count(1) == labels.count(0)


def test_dataset_asset(text_filtered):
    table = pq.read_table(text_filtered.home / "caption_classifier_dataset" / "all.parquet")
    assert table.schema.equals(DATASET_SCHEMA)
    rows = table.to_pylist()
    assert sum(r["label"] for r in rows) * 2 == len(rows) > 100
    # The sample shards hold few face captions: the corpora supply most positives, marked so.
    origins = {r["origin"] for r in rows if r["label"] == 1}
    assert {o for o in origins if o.startswith(CORPUS_PREFIX)} and origins <= {FACE_PAIRS} | {
        CORPUS_PREFIX + "laion400m_10k", CORPUS_PREFIX + "laion2b_en_10k"
    }
    assert text_filtered.checks[("caption_classifier_dataset", "balanced")]
    assert text_filtered.checks[("caption_classifier_dataset", "no_caption_in_two_splits")]


def test_classifier_is_a_hugging_face_model_with_metrics(text_filtered):
    path = classifier_model_dir(text_filtered.home)
    model = AutoModelForSequenceClassification.from_pretrained(str(path))
    assert model.config.num_labels == 2
    meta = text_filtered.metadata[("caption_classifier", None)]
    for name in ("test_accuracy", "test_f1", "test_roc_auc"):
        assert 0.8 <= meta[name] <= 1.0, (name, meta[name])
    assert "train_loss" in meta["training_curve"]
    assert text_filtered.checks[("caption_classifier", "test_accuracy_above_floor")]
    model, tokenizer = load_classifier(path)
    scores = score_texts(model, tokenizer, ["A smiling woman with blue eyes and earrings", "Stainless steel kitchen sink"])
    assert scores[0] > 0.5 > scores[1]


def test_face_description_test_meets_target(text_filtered):
    meta = text_filtered.metadata[("face_description_test", None)]
    assert meta["accuracy"] >= 0.97, meta["errors"]
    assert text_filtered.checks[("face_description_test", "accuracy_meets_target")]
    rows = pq.read_table(text_filtered.home / "face_description_test" / "all.parquet").to_pylist()
    assert sum(r["label"] for r in rows) * 2 == len(rows) == 600
    # No test caption was seen in training.
    seen = {t.lower() for t in pq.read_table(text_filtered.home / "caption_classifier_dataset" / "all.parquet")["text"].to_pylist()}
    assert not seen & {r["text"].lower() for r in rows}
    assert {r["subset"] for r in rows if r["label"] == 0} == {"photos_without_face", "held_out_corpus"}


def test_grammar_describes_the_attributes():
    import random

    attributes = {"Male": -1, "Smiling": 1, "Wearing_Earrings": 1, "Arched_Eyebrows": 1, "Wavy_Hair": 1, "Young": -1}
    text = describe(attributes, random.Random(0))
    assert "woman" in text and "arched eyebrows" in text and "wavy hair" in text and "earrings" in text
    assert "She" in text and ("smil" in text)


def test_test_set_negatives_carry_no_face_words_and_are_held_out():
    rows = face_description_set(
        ["The woman has big lips. She is smiling."] * 3,
        ["A dog on a sofa", "A man with a big smile"],
        ["Red car for sale", "Seen caption", "Lipstick set", "Blue vase"],
        seen={"seen caption"},
        keywords=frozenset({"smile"}),
        seed=0,
    )
    negatives = [(text, origin) for text, label, origin in rows if label == 0]
    assert negatives[0] == ("A dog on a sofa", "photos_without_face")
    assert {t for t, _ in negatives[1:]} == {"Red car for sale", "Blue vase"}


def _tiny_dataset(home, flipped_test: bool) -> None:
    """A small hand-made training set; with flipped_test the test labels are wrong on purpose."""
    rows = []
    for i in range(24):
        split = "train" if i < 16 else "validation" if i < 20 else "test"
        for label, text in ((1, f"A woman with a lovely smile and blue eyes {i}"), (0, f"Cast iron frying pan model {i}")):
            shown = 1 - label if flipped_test and split == "test" else label
            rows.append({"text": text, "label": shown, "origin": "test", "source_id": str(i), "keywords": [], "split": split})
    (home / "caption_classifier_dataset").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=DATASET_SCHEMA), home / "caption_classifier_dataset" / "all.parquet")


@pytest.mark.slow
def test_a_model_below_the_accuracy_floor_blocks_filtering(tmp_path, instance):
    from flip_assets.defs.curation.s04_caption_classifier import caption_classifier
    from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs

    _tiny_dataset(tmp_path, flipped_test=True)
    resources = make_text_resources(tmp_path, epochs=1, max_length=16, min_test_accuracy=0.8)
    result = run_assets([caption_classifier], resources, instance)
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "test_accuracy_above_floor" and not evaluation.passed
    assert not classifier_model_dir(tmp_path).exists()
    assert (classifier_model_dir(tmp_path).parent / "rejected_model" / "config.json").is_file()
    # Run alone afterwards, the filter still refuses, naming the check that refused the model.
    result = run_assets([face_text_pairs], resources, instance, "00000")
    assert not result.success
    assert "test_accuracy_above_floor" in _failure_message(result)


def _failure_message(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def test_corrupt_or_incomplete_classifier_fails_naming_the_folder(tmp_path, text_filtered):
    broken = tmp_path / "model"
    shutil.copytree(classifier_model_dir(text_filtered.home), broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=str(broken)):
        load_classifier(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=f"{broken}.*model.safetensors"):
        load_classifier(broken)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        load_classifier(tmp_path / "absent")
