"""Stage 4: the caption classifier (paper 3.1, textual filtering): its balanced training set,
the fine-tuned BERT model, and an independent face-description test of that model."""


import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core import storage
from flip_assets.core.caption_classifier import (
    SPLITS,
    build_dataset,
    caption_records,
    classifier_model_dir,
    load_classifier,
    predictions_table,
    roc_auc,
    save_classifier,
    score_texts,
    train_classifier,
)
from flip_assets.core.captions import normalized, read_caption_corpus, shard_captions
from flip_assets.core.face_descriptions import celeba_descriptions, face_description_set
from flip_assets.core.keywords import KeywordMatcher, used_keywords
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.curation.partitions import SINGLE_RUN_BACKFILL
from flip_assets.defs.curation.resources import CaptionCorpus, CaptionFilterResource
from flip_assets.defs.resources import FlipStorage

# Judged from caption_classifier_dataset_checks.sql.
DATASET_CHECKS = AssetChecks(
    "caption_classifier_dataset",
    Check(
        "balanced", "Not empty, and positives and negatives within 1% of each other in every split.", blocking=True,
        report=("positives", "negatives"), passed=lambda f: f["samples"] > 0 and f["max_split_imbalance"] <= 0.01,
        metadata=lambda f: {"max_split_imbalance": float(f["max_split_imbalance"])},
    ),  # fmt: skip
    Check(
        "no_caption_in_two_splits", "No caption (ignoring case) in two splits, nor twice in one.",
        blocking=True, zero=("captions_in_two_splits", "duplicate_captions"),
    ),  # fmt: skip
)
# Judged from classifier_metrics.sql on the test split and FLIP_CLASSIFIER_MIN_ACCURACY.
CLASSIFIER_CHECKS = AssetChecks(
    "caption_classifier",
    Check(
        "test_accuracy_above_floor",
        "Accuracy on the test split reaches FLIP_CLASSIFIER_MIN_ACCURACY; a model below it is saved aside as "
        "rejected_model and filters nothing.",
        blocking=True, report=("test_accuracy", "floor"), passed=lambda f: f["test_accuracy"] >= f["floor"],
    ),  # fmt: skip
)
# Judged from classifier_metrics.sql over all its captions.
FACE_DESCRIPTION_CHECKS = AssetChecks(
    "face_description_test",
    Check(
        "accuracy_meets_target",
        "Accuracy on captions the classifier never saw (CelebA attributes written out as face descriptions, "
        "against captions that describe no face) reaches the target accuracy in its metadata.",
        report=("accuracy", "target"), passed=lambda f: f["accuracy"] >= f["target"],
    ),
)


def _markdown(rows: list[dict]) -> MetadataValue:
    return MetadataValue.md(pa.Table.from_pylist(rows).to_pandas().to_markdown(index=False) if rows else "none")


@asset(
    deps=["face_keywords", "raw_shards", "face_detections"],
    group_name="textual_filtering",
    kinds={"parquet"},
    check_specs=DATASET_CHECKS.specs,
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    automation_condition=REFRESH_ON_CHANGE,
)
def caption_classifier_dataset(
    context: AssetExecutionContext,
    flip_storage: FlipStorage,
    caption_corpus: CaptionCorpus,
    caption_filter: CaptionFilterResource,
) -> MaterializeResult:
    """Captions with a face keyword (of face pairs, or of the caption-only corpora: see origin)
    as positives, a random sample of the other captions as negatives, 1:1, de-duplicated and
    split train/validation/test with every caption in one split only."""
    keywords = used_keywords(flip_storage.path("face_keywords"))
    records = caption_records(shard_captions(Path(flip_storage.home)), caption_corpus.files)
    table = build_dataset(
        records, KeywordMatcher(keywords), caption_filter.max_samples, caption_filter.seed,
        max_chars=caption_filter.max_caption_chars,
    )  # fmt: skip
    path = flip_storage.write("caption_classifier_dataset", None, table)
    facts = storage.query(storage.sql_file("caption_classifier_dataset_checks.sql"), path=str(path))[0]
    summary = storage.query(storage.sql_file("caption_classifier_dataset_summary.sql"), path=str(path))
    if facts["samples"] == 0:
        context.log.warning("no captions with a face keyword: the classifier dataset is empty")
    positives = table.filter(pc.equal(table["label"], 1)).select(["text", "origin", "keywords"]).slice(0, 8)
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "samples": facts["samples"],
            "positives": facts["positives"],
            "negatives": facts["negatives"],
            "candidate_records": len(records),
            "keywords_used": len(keywords),
            "composition": _markdown(summary),
            "positive_examples": MetadataValue.md(positives.to_pandas().to_markdown(index=False)),
        },
        check_results=DATASET_CHECKS.results(facts),
    ))


@asset(
    deps=["caption_classifier_dataset"],
    group_name="textual_filtering",
    kinds={"pytorch", "parquet"},
    check_specs=CLASSIFIER_CHECKS.specs,
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    pool="training",
    automation_condition=REFRESH_ON_CHANGE,
)
def caption_classifier(
    context: AssetExecutionContext, flip_storage: FlipStorage, caption_filter: CaptionFilterResource
) -> MaterializeResult:
    """BERT (all-MiniLM-L6-v2) fine-tuned to tell face descriptions from other captions, saved
    in Hugging Face format; its validation and test predictions are the Parquet output. A model
    below the accuracy floor is saved aside as rejected_model and never used for filtering."""
    rows = flip_storage.read("caption_classifier_dataset").to_pylist()
    splits = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    if not splits["train"] or not splits["test"]:
        raise ValueError("caption_classifier_dataset has no train or no test rows: too few face keyword captions")
    settings = caption_filter.training_settings()
    started = time.perf_counter()
    model, tokenizer, curve = train_classifier(
        Path(caption_filter.base_model),
        ([r["text"] for r in splits["train"]], [r["label"] for r in splits["train"]]),
        ([r["text"] for r in splits["validation"]], [r["label"] for r in splits["validation"]]),
        settings,
        log=context.log.info,
        device=caption_filter.device,
    )
    train_seconds = time.perf_counter() - started
    evaluated = [(r["text"], r["label"], r["split"]) for r in splits["validation"] + splits["test"]]
    scores = score_texts(model, tokenizer, [text for text, _, _ in evaluated], caption_filter.score_batch_size, settings.max_length)
    path = flip_storage.write("caption_classifier", None, predictions_table(evaluated, scores))
    metrics = {
        m["subset"]: m
        for m in storage.query(storage.sql_file("classifier_metrics.sql"), path=str(path), threshold=caption_filter.keep_threshold)
    }
    test = metrics["test"]
    checks = CLASSIFIER_CHECKS.results({"test_accuracy": test["accuracy"], "floor": caption_filter.min_test_accuracy})
    model_dir = classifier_model_dir(Path(flip_storage.home))
    saved = save_classifier(model, tokenizer, model_dir if checks[0].passed else model_dir.with_name("rejected_model"))
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "model": MetadataValue.path(str(saved)),
            "test_accuracy": test["accuracy"],
            "test_f1": test["f1"],
            "test_roc_auc": roc_auc([r["label"] for r in splits["test"]], scores[len(splits["validation"]) :]),
            "test_samples": test["samples"],
            "validation_accuracy": metrics["validation"]["accuracy"] if "validation" in metrics else None,
            "train_samples": len(splits["train"]),
            "train_seconds": round(train_seconds, 1),
            "training_curve": _markdown(curve),
            "settings": MetadataValue.json(vars(settings)),
        },
        check_results=checks,
    ))


@asset(
    deps=["caption_classifier", "caption_classifier_dataset", "face_keywords", "raw_shards", "face_detections"],
    group_name="textual_filtering",
    kinds={"pytorch", "parquet"},
    check_specs=FACE_DESCRIPTION_CHECKS.specs,
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    pool="classifier",
    automation_condition=REFRESH_ON_CHANGE,
)
def face_description_test(
    context: AssetExecutionContext,
    flip_storage: FlipStorage,
    caption_corpus: CaptionCorpus,
    caption_filter: CaptionFilterResource,
) -> MaterializeResult:
    """The classifier on captions it never saw, like the paper's MM-CelebA test: CelebA
    attributes written out by a grammar (positives) against as many captions that do not
    describe a face: of photos face_detections found no face in, and held-out corpus captions."""
    home = Path(flip_storage.home)
    model, tokenizer = load_classifier(flip_storage.caption_classifier_dir(), caption_filter.device)
    keywords = frozenset(used_keywords(flip_storage.path("face_keywords")))
    seen = {normalized(t) for t in flip_storage.read("caption_classifier_dataset").column("text").to_pylist()}
    descriptions = celeba_descriptions(Path(caption_filter.celeba_attr), caption_filter.eval_samples, caption_filter.seed)
    no_face = [r["caption"] for r in shard_captions(home) if r["face_drop_reason"] == "no_face"]
    corpus = [caption for path in caption_corpus.files for caption in read_caption_corpus(path)]
    rows = face_description_set(descriptions, no_face, corpus, seen, keywords, caption_filter.seed)
    scores = score_texts(model, tokenizer, [text for text, _, _ in rows], caption_filter.score_batch_size, caption_filter.max_length)
    path = flip_storage.write("face_description_test", None, predictions_table(rows, scores))
    metrics = storage.query(storage.sql_file("classifier_metrics.sql"), path=str(path), threshold=caption_filter.keep_threshold)
    overall = next(m for m in metrics if m["subset"] == "all")
    wrong = [
        {"text": text, "origin": origin, "score": round(float(s), 3)}
        for (text, label, origin), s in zip(rows, scores)
        if (s > caption_filter.keep_threshold) != (label == 1)
    ]
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "accuracy": overall["accuracy"],
            "f1": overall["f1"],
            "samples": overall["samples"],
            "target_accuracy": caption_filter.eval_target_accuracy,
            "per_origin": _markdown([{k: m[k] for k in ("subset", "samples", "accuracy")} for m in metrics]),
            "errors": _markdown(wrong[:20]),
            "positive_examples": MetadataValue.md("\n\n".join(descriptions[:5])),
        },
        check_results=FACE_DESCRIPTION_CHECKS.results({**overall, "target": caption_filter.eval_target_accuracy}),
    ))
