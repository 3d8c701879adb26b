"""face_keywords: tokens, seed expansion, the review file, determinism, the asset itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest
from gensim.models import Word2Vec

from conftest import DATA, REPO_ROOT, make_text_resources, run_assets
from flip_assets.core.curation.captions import clean_caption, tokenize
from flip_assets.core.curation.keywords import (
    SEED_WORDS,
    Candidate,
    KeywordMatcher,
    Review,
    keyword_table,
    load_review,
)


def test_tokenize_lowercases_and_drops_html_urls_digits_and_emoji():
    caption = 'A <b>Smiling</b> woman&#39;s EYES https://x.com/smile.jpg www.nose.org 4K 😀 <a href="u">mouth</a>'
    assert tokenize(caption) == ["smiling", "woman", "eyes", "mouth"]
    assert clean_caption("smile\x00\x07\u200bface\n\t ") == "smile face"
    assert tokenize(None) == [] and clean_caption("   ") == ""


def test_matcher_finds_each_keyword_once_in_order_and_ignores_urls():
    matcher = KeywordMatcher(["smile", "eyes", "nose"])
    assert matcher.find("Blue EYES, a big smile and eyes again") == ["eyes", "smile"]
    assert matcher.find("http://example.com/smile-nose.jpg") == []
    assert matcher.find("smiles") == []  # whole tokens only
    with pytest.raises(ValueError, match="no keywords"):
        KeywordMatcher([])


def test_keyword_table_applies_review_and_marks_unreviewed():
    candidates = [
        Candidate("smile", "smile", None, 0, 1.0),
        Candidate("grin", "smile", None, 1, 0.8),
        Candidate("pies", "smile", None, 1, 0.7),
        Candidate("beam", "smile", "grin", 2, 0.6),
    ]
    reviews = {"grin": Review("accept", "expression"), "pies": Review("reject", "food")}
    rows = {r["word"]: r for r in keyword_table(candidates, reviews, Counter(grin=3)).to_pylist()}
    assert [rows[w]["review"] for w in ("smile", "grin", "pies", "beam")] == ["seed", "accepted", "rejected", "unreviewed"]
    assert rows["grin"]["corpus_count"] == 3 and rows["beam"]["via"] == "grin" and rows["pies"]["reason"] == "food"


@pytest.mark.parametrize(
    "content, error",
    [
        ("word,decision\nsmile,accept\n", "header must be"),
        ("word,decision,reason\ngrin,maybe,unsure\n", "line 2"),
        ("word,decision,reason\ngrin,accept,a\ngrin,reject,b\n", "reviewed twice"),
    ],
)
def test_malformed_review_file_fails_naming_path_and_problem(tmp_path, content, error):
    path = tmp_path / "review.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=error) as caught:
        load_review(path)
    assert str(path) in str(caught.value)


def test_missing_review_file_fails_naming_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="FLIP_KEYWORD_REVIEW"):
        load_review(tmp_path / "nope.csv")


TRAIN_SCRIPT = """
import hashlib, json, sys, types
from pathlib import Path
# Import the core modules without the package __init__, which loads every Dagster definition.
package = types.ModuleType("flip_assets")
package.__path__ = [sys.argv[1]]
sys.modules["flip_assets"] = package
from flip_assets.core.curation.captions import read_caption_corpus, tokenize
from flip_assets.core.curation.keywords import Word2VecSettings, expand_seeds, train_word2vec
captions = read_caption_corpus(Path(sys.argv[2]))[:4000]
model = train_word2vec([tokenize(c) for c in captions], Word2VecSettings(epochs=3, seed=7))
print(json.dumps({
    "vectors": hashlib.sha256(model.wv.vectors.tobytes()).hexdigest(),
    "candidates": [[c.word, c.seed, c.via, c.similarity] for c in expand_seeds(model)],
}))
"""


@pytest.mark.slow
def test_word2vec_and_keywords_are_the_same_when_trained_twice_with_other_hash_seeds():
    """Two fresh interpreters with different string-hash salts (PYTHONHASHSEED) train the
    same model and find the same candidates."""
    # Side by side: Word2Vec trains on one thread (workers=1), so two cores take both at once.
    started = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN_SCRIPT, str(REPO_ROOT / "flip_assets"), str(DATA / "laion" / "laion400m_10k.parquet")],
            env={**os.environ, "PYTHONHASHSEED": hash_seed}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for hash_seed in ("1", "2")
    ]  # fmt: skip
    runs = []
    for process in started:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        runs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1]
    assert len(runs[0]["candidates"]) > len(SEED_WORDS)  # neighbours were found, not only seeds


@pytest.mark.slow
@pytest.mark.e2e
def test_face_keywords_asset(text_filtered):
    table = pq.read_table(text_filtered.home / "face_keywords" / "all.parquet").to_pylist()
    words = {r["word"]: r for r in table}
    assert all(words[s]["review"] == "seed" for s in SEED_WORDS)
    assert len(words) == len(table) <= len(SEED_WORDS) * (1 + 10 + 10 * 3)
    reviews = load_review(REPO_ROOT / "flip_assets" / "face_keywords_review.csv")
    for row in table:
        if row["depth"] > 0:
            expected = {"accept": "accepted", "reject": "rejected"}.get(getattr(reviews.get(row["word"]), "decision", None), "unreviewed")
            assert row["review"] == expected, row
    meta = text_filtered.metadata[("face_keywords", None)]
    unreviewed = [r["word"] for r in table if r["review"] == "unreviewed"]
    assert meta["unreviewed"] == len(unreviewed)
    assert all(f"\n{w},,\n" in meta["unreviewed_words"] for w in unreviewed)
    assert text_filtered.checks[("face_keywords", "every_seed_word_listed")]
    assert text_filtered.checks[("face_keywords", "every_candidate_reviewed")] == (not unreviewed)
    model = Word2Vec.load(str(text_filtered.home / "face_keywords" / "word2vec.model"))
    assert "eyes" in model.wv and meta["vocabulary"] == len(model.wv)


@pytest.mark.slow
@pytest.mark.e2e
def test_unreviewed_candidates_are_reported_for_review(tmp_path, detected_home, instance):
    """With an empty review file every candidate is unreviewed: listed in the metadata, ready
    to paste into the file; the asset still materializes, its review check warns."""
    from flip_assets.defs.curation.s03_face_keywords import face_keywords

    for asset_key in ("raw_shards", "face_detections"):
        shutil.copytree(detected_home / asset_key, tmp_path / asset_key)
    corpus = tmp_path / "corpus.parquet"
    laion = pq.read_table(DATA / "laion" / "laion400m_10k.parquet", columns=["TEXT"]).slice(0, 1500)
    pq.write_table(laion, corpus)
    review = tmp_path / "review.csv"
    review.write_text("word,decision,reason\n")
    result = run_assets([face_keywords], make_text_resources(tmp_path, corpus=[corpus], review_file=review), instance)
    assert result.success
    table = pq.read_table(tmp_path / "face_keywords" / "all.parquet").to_pylist()
    unreviewed = [r["word"] for r in table if r["depth"] > 0]
    assert unreviewed and all(r["review"] == "unreviewed" for r in table if r["depth"] > 0)
    (materialization,) = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["unreviewed"].value == len(unreviewed)
    assert all(f"\n{w},,\n" in metadata["unreviewed_words"].value for w in unreviewed)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["every_candidate_reviewed"].passed and checks["every_seed_word_listed"].passed
