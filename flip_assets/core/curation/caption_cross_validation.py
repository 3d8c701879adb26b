"""Cross-validation of the caption classifier's recipe on the hand-labelled training captions (issue 9).

The reviewed test split holds 70 face captions, so its precision and recall are wide. The
hand-labelled training captions (17,337, 721 faces: the whole LAION corpus but the reviewed set,
labelled against the same rule) are a far larger sample of the same population. Each fold builds
the training set without its held-out captions (left out the way reviewed captions are) and trains
as caption_classifier does, so every labelled caption is scored once by a model that never saw it.
The command line: `python -m flip_assets.tools.cross_validate_classifier --help`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from flip_assets.core.curation.caption_classifier import (
    CaptionRecord,
    TrainingSettings,
    caption_records,
    score_texts,
    train_classifier,
)
from flip_assets.core.curation.caption_review import caption_id, load_review
from flip_assets.core.curation.caption_training import (
    WebDatasetSettings,
    build_web_dataset,
    generated_descriptions,
    load_training_labels,
    training_rounds,
)
from flip_assets.core.curation.captions import clean_caption
from flip_assets.core.curation.keywords import SEED_WORDS, KeywordMatcher
from flip_assets.core.curation.keywords import load_review as load_keyword_review

TARGET = 0.8  # issue 9: precision and recall


def cross_validated_scores(
    labelled: Sequence[tuple[str, int]],
    records: Sequence[CaptionRecord],
    matcher: KeywordMatcher,
    reviewed_ids: set[str],
    descriptions: Sequence[tuple[str, str]],
    base_model: Path,
    folds: int = 5,
    dataset: WebDatasetSettings = WebDatasetSettings(),
    training: TrainingSettings = TrainingSettings(),
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """P(face description) of every labelled caption, by the model of the fold that held it out."""
    from sklearn.model_selection import StratifiedKFold  # where used, like every heavy library in core/

    texts = [clean_caption(text) for text, _ in labelled]
    labels = np.array([label for _, label in labelled])
    scores = np.full(len(labelled), np.nan, dtype=np.float32)
    for fold, (kept, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, labels), 1):
        left_out = reviewed_ids | {caption_id(texts[i]) for i in held if texts[i]}
        table, _ = build_web_dataset(records, matcher, left_out, descriptions, dataset, labelled=[labelled[i] for i in kept])
        rows = table.to_pylist()
        validation = [r for r in rows if r["split"] == "validation"]
        model, tokenizer, _ = train_classifier(
            base_model, training_rounds(rows), ([r["text"] for r in validation], [r["label"] for r in validation]),
            training, log=lambda _: None,
        )  # fmt: skip
        scores[held] = score_texts(model, tokenizer, [texts[i] for i in held], max_length=training.max_length)
        log(f"fold {fold}/{folds}: {len(held)} captions scored")
    return scores


def summary(labels: Sequence[int], scores: Sequence[float], resamples: int = 300, seed: int = 0) -> dict:
    """Average precision, best min(precision, recall), precision at recall 0.8 and recall at
    precision 0.8, with 90 % bootstrap intervals of the last three."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    labels, scores = np.asarray(labels), np.asarray(scores)

    def points(y, s):
        precision, recall, _ = precision_recall_curve(y, s)
        return (
            float(np.max(np.minimum(precision, recall))),
            float(np.max(precision[recall >= TARGET])),
            float(np.max(recall[precision >= TARGET], initial=0.0)),
        )

    rng = np.random.default_rng(seed)
    drawn = [points(labels[i], scores[i]) for i in (rng.integers(0, len(labels), len(labels)) for _ in range(resamples))]
    names = ("best_min_precision_recall", "precision_at_recall_0.8", "recall_at_precision_0.8")
    out = {"captions": len(labels), "faces": int(labels.sum()), "average_precision": round(float(average_precision_score(labels, scores)), 3)}
    for name, value, column in zip(names, points(labels, scores), zip(*drawn, strict=True), strict=True):
        out[name] = round(value, 3)
        out[name + "_90pct"] = [round(float(q), 3) for q in np.percentile(column, [5, 95])]
    return out


def cross_validate_recipe(
    corpus: Sequence[Path],
    eval_dir: Path,
    labels_file: Path,
    review_file: Path,
    keyword_review_file: Path,
    base_model: Path,
    folds: int = 5,
    log: Callable[[str], None] = print,
) -> tuple[list[int], np.ndarray]:
    """(labels, scores) of the labelled captions of `labels_file`, in its order, each score by the
    fold model that held the caption out; inputs as the pipeline builds them: the seeds and the
    accepted words of the keyword review as keywords, the reviewed captions left out, 3,000
    generated descriptions (seed 42) from the face label files of `eval_dir`."""
    accepted = [w for w, r in load_keyword_review(keyword_review_file).items() if r.decision == "accept"]
    labelled = load_training_labels(labels_file)
    scores = cross_validated_scores(
        labelled,
        caption_records([], corpus),
        KeywordMatcher(sorted({w.lower() for w in (*SEED_WORDS, *accepted)})),
        {r["caption_id"] for r in load_review(review_file)},
        generated_descriptions(eval_dir, 3000, 42),
        base_model,
        folds,
        log=log,
    )
    return [label for _, label in labelled], scores
