"""The cross-validation of the classifier's recipe on the hand-labelled training captions."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

from conftest import DATA, REPO_ROOT
from flip_assets.core.curation.caption_cross_validation import summary
from flip_assets.core.curation.caption_training import TRAINING_LABEL_COLUMNS
from flip_assets.tools.cross_validate_classifier import main


def test_summary_reads_the_curve_and_its_intervals():
    labels = [1] * 20 + [0] * 80
    perfect = summary(labels, [1.0] * 20 + [0.0] * 80, resamples=50)
    assert perfect["average_precision"] == perfect["best_min_precision_recall"] == perfect["precision_at_recall_0.8"] == 1.0
    assert perfect["faces"] == 20 and perfect["captions"] == 100
    # Half the faces ranked below every other caption: recall 0.8 only by taking all 100 captions.
    half = summary(labels, [1.0] * 10 + [0.0] * 10 + [0.5] * 80, resamples=50)
    assert half["precision_at_recall_0.8"] == 0.2 and half["recall_at_precision_0.8"] == 0.5
    low, high = half["precision_at_recall_0.8_90pct"]
    assert low <= half["precision_at_recall_0.8"] <= high


def test_every_labelled_caption_is_scored_by_a_model_that_held_it_out(tmp_path, capsys):
    rows = list(csv.DictReader((REPO_ROOT / "flip_assets" / "face_caption_training_labels.csv").open(encoding="utf-8")))
    chosen = [r for r in rows if r["label"] == "1"][:24] + [r for r in rows if r["label"] == "0"][:96]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, TRAINING_LABEL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(chosen)
    # The corpus holds the labelled captions, as the LAION files do: a held-out one must not come
    # back into training through its cue label.
    pq.write_table(pa.table({"caption": [r["caption"] for r in chosen]}), tmp_path / "corpus.parquet")
    scores_file = tmp_path / "scores.npy"
    assert main(["--corpus", str(tmp_path / "corpus.parquet"), "--eval-dir", str(DATA / "eval"), "--labels", str(labels),
                 "--folds", "2", "--scores", str(scores_file)]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    scores = np.load(scores_file)
    assert scores.shape == (120,) and not np.isnan(scores).any() and ((scores >= 0) & (scores <= 1)).all()
    assert result["captions"] == 120 and result["faces"] == 24
    # Even from 12 training faces a fold's model ranks unseen face captions above the others (two
    # folds: each model trains once on half the captions; three trained 1.5x the steps, same claim).
    assert roc_auc_score([int(r["label"]) for r in chosen], scores) > 0.7
