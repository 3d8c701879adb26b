"""Face keywords (paper 3.1): Word2Vec neighbours of 12 seed words, screened by a person.

The neighbours of each seed (top 10) and their neighbours (top 3) are candidates; a
reviewed CSV file decides which of them count as face words. Training is deterministic for
a fixed seed: one worker thread, and gensim 4 draws its initial vectors from numpy's
generator seeded with `seed` rather than from Python's salted string hash.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from flip_assets.core.curation.captions import TOKEN, strip_markup
from flip_assets.core.io.storage import atomic_write_bytes, require_file

if TYPE_CHECKING:  # gensim is imported where a model is trained: loading the definitions stays cheap
    from gensim.models import Word2Vec

SEED_WORDS = (
    "smile", "nose", "eyes", "mouth", "cheek", "sad",
    "angry", "upset", "scared", "surprised", "eyeglasses", "earrings",
)  # fmt: skip
REVIEW_DECISIONS = ("accept", "reject")
REVIEW_COLUMNS = ("word", "decision", "reason")
# review states in the output: seeds are keywords by definition
SEED, ACCEPTED, REJECTED, UNREVIEWED = "seed", "accepted", "rejected", "unreviewed"
USED_STATES = (SEED, ACCEPTED)

FACE_KEYWORDS_SCHEMA = pa.schema(
    [
        ("word", pa.string()),
        ("seed", pa.string()),  # the seed it was reached from (the closest one if several)
        ("via", pa.string()),  # first-level neighbour it was reached through; null for seeds and their neighbours
        ("depth", pa.int8()),  # 0 seed, 1 neighbour of a seed, 2 neighbour of a neighbour
        ("similarity", pa.float32()),  # cosine similarity to the seed (1 for seeds; null for a seed missing from the vocabulary)
        ("corpus_count", pa.int64()),  # occurrences in the training corpus
        ("review", pa.string()),  # seed | accepted | rejected | unreviewed
        ("reason", pa.string()),  # the reviewer's reason
    ]
)


@dataclass(frozen=True)
class Word2VecSettings:
    vector_size: int = 100
    window: int = 5
    min_count: int = 2
    epochs: int = 20
    seed: int = 42
    skip_gram: bool = True  # better neighbours than CBOW on a corpus this small


def train_word2vec(sentences: list[list[str]], settings: Word2VecSettings) -> Word2Vec:
    from gensim.models import Word2Vec

    if not any(sentences):
        raise ValueError("no caption tokens to train Word2Vec on: are face_detections and the corpora empty?")
    return Word2Vec(
        sentences=sentences,
        vector_size=settings.vector_size,
        window=settings.window,
        min_count=settings.min_count,
        epochs=settings.epochs,
        sg=1 if settings.skip_gram else 0,
        seed=settings.seed,
        workers=1,  # several threads interleave updates in arbitrary order: not reproducible
    )


def save_word2vec(model: Word2Vec, path: Path) -> Path:
    """One self-contained file (no side .npy files), swapped in atomically; Word2Vec.load reads it."""
    return atomic_write_bytes(path, lambda tmp: model.save(str(tmp), separately=[]))


@dataclass(frozen=True)
class Candidate:
    word: str
    seed: str
    via: str | None
    depth: int
    similarity: float | None


def expand_seeds(model: Word2Vec, seeds: Iterable[str] = SEED_WORDS, top: int = 10, second: int = 3) -> list[Candidate]:
    """Seeds, their `top` neighbours and `second` neighbours of each of those, one entry per
    word: the one with the highest similarity to its seed. Seeds missing from the vocabulary
    are kept with a null similarity (they are still keywords)."""
    wv = model.wv
    best: dict[str, Candidate] = {}

    def offer(candidate: Candidate) -> None:
        current = best.get(candidate.word)
        if current is None or (current.depth > 0 and candidate.similarity > current.similarity):
            best[candidate.word] = candidate

    seeds = list(seeds)
    for seed in seeds:
        best[seed] = Candidate(seed, seed, None, 0, 1.0 if seed in wv else None)
    for seed in seeds:
        if seed not in wv:
            continue
        for neighbour, similarity in wv.most_similar(seed, topn=top):
            offer(Candidate(neighbour, seed, None, 1, float(similarity)))
            for second_word, _ in wv.most_similar(neighbour, topn=second):
                if second_word != seed:
                    offer(Candidate(second_word, seed, neighbour, 2, float(wv.similarity(seed, second_word))))
    return list(best.values())


@dataclass(frozen=True)
class Review:
    decision: str  # accept | reject
    reason: str


def load_review(path: Path) -> dict[str, Review]:
    """The reviewed CSV (word, decision, reason). Malformed files fail naming path and line."""
    if not path.is_file():
        raise FileNotFoundError(f"keyword review file not found: {path} (set FLIP_KEYWORD_REVIEW)")
    reviews: dict[str, Review] = {}
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f)
        if tuple(rows.fieldnames or ()) != REVIEW_COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(REVIEW_COLUMNS)}, found {rows.fieldnames}")
        for row in rows:
            word = (row["word"] or "").strip().lower()
            decision = (row["decision"] or "").strip().lower()
            if not word or decision not in REVIEW_DECISIONS:
                raise ValueError(f"{path} line {rows.line_num}: need a word and a decision in {REVIEW_DECISIONS}: {row}")
            if word in reviews:
                raise ValueError(f"{path} line {rows.line_num}: {word!r} is reviewed twice")
            reviews[word] = Review(decision, (row["reason"] or "").strip())
    return reviews


def keyword_table(candidates: list[Candidate], reviews: dict[str, Review], counts: Counter) -> pa.Table:
    rows = []
    for c in sorted(candidates, key=lambda c: (c.depth, c.seed, -(c.similarity or 0.0), c.word)):
        review = reviews.get(c.word)
        if c.depth == 0:
            state, reason = SEED, "seed word of the paper"
        elif review is None:
            state, reason = UNREVIEWED, None
        else:
            state, reason = (ACCEPTED if review.decision == "accept" else REJECTED), review.reason
        rows.append(
            {
                "word": c.word, "seed": c.seed, "via": c.via, "depth": c.depth, "similarity": c.similarity,
                "corpus_count": counts.get(c.word, 0), "review": state, "reason": reason,
            }
        )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=FACE_KEYWORDS_SCHEMA)


def used_keywords(path: Path) -> list[str]:
    """The face keywords of a face_keywords file: seeds and accepted words."""
    table = pq.read_table(require_file(path), columns=["word", "review"]).to_pylist()
    return [row["word"] for row in table if row["review"] in USED_STATES]


class KeywordMatcher:
    """Finds keywords in captions by a set lookup on tokens: one pass over the caption,
    whatever the number of keywords. Tokens are those of `tokenize` (control characters and
    extra whitespace never form or join tokens, so cleaning them is not needed here)."""

    def __init__(self, keywords: Iterable[str]):
        self.keywords = frozenset(k.lower() for k in keywords)
        if not self.keywords:
            raise ValueError("no keywords to match: the face_keywords list has no seed or accepted word")

    def find(self, caption: str | None) -> list[str]:
        """Keywords of the caption, each once, in order of appearance."""
        if not caption:
            return []
        found: dict[str, None] = {}
        for token in TOKEN.findall(strip_markup(caption).lower()):
            if token in self.keywords:
                found[token] = None
        return list(found)
