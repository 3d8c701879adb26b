"""The evaluation set of the denoiser: real noisy face captions from LAION.

The sample shards hold only a handful of face-text pairs, too few for the paper's quality
figures. LAION captions (URL + alt-text) are what FLIP was built from, so the captions the
caption classifier accepts (as face_text_pairs does: score above the threshold) are a fair
stand-in. They are shuffled with a seed and scored in chunks until enough are accepted:
the classifier never scores more captions than needed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from flip_assets.core.curation.caption_classifier import load_classifier, score_texts
from flip_assets.core.curation.captions import clean_caption, normalized, read_caption_corpus
from flip_assets.core.curation.keywords import KeywordMatcher

# The columns of face_text_pairs that the denoiser reads, with the classifier score.
EVAL_SET_SCHEMA = pa.schema(
    [
        ("key", pa.string()),  # <corpus file stem>:<row>
        ("caption", pa.string()),
        ("text_score", pa.float32()),
        ("keywords", pa.list_(pa.string())),
        ("kept", pa.bool_()),
        ("drop_reason", pa.string()),
    ]
)


def caption_pool(corpora: Sequence[Path], max_chars: int) -> list[dict]:
    """key and caption of every caption of the corpora with readable text, each text once."""
    pool, seen = [], set()
    for path in corpora:
        for row, caption in enumerate(read_caption_corpus(path)):
            identity = normalized(caption) if caption and len(caption) <= max_chars else ""
            if identity and identity not in seen:
                seen.add(identity)
                pool.append({"key": f"{path.stem}:{row}", "caption": caption})
    return pool


def sample_accepted_captions(
    corpora: Sequence[Path],
    classifier_dir: Path,
    keywords: Sequence[str],
    max_captions: int,
    seed: int,
    threshold: float,
    max_chars: int,
    max_length: int,
    chunk: int = 512,
    device: str = "cpu",
) -> tuple[pa.Table, dict]:
    """Up to max_captions captions the classifier scores above threshold (EVAL_SET_SCHEMA),
    and facts: pool size and how many captions were scored."""
    pool = caption_pool(corpora, max_chars)
    random.Random(seed).shuffle(pool)
    model, tokenizer = load_classifier(classifier_dir, device)
    matcher = KeywordMatcher(keywords)
    accepted: list[dict] = []
    scored = 0
    while len(accepted) < max_captions and scored < len(pool):
        batch = pool[scored : scored + chunk]
        scored += len(batch)
        scores = score_texts(model, tokenizer, [clean_caption(r["caption"]) for r in batch], max_length=max_length)
        for record, score in zip(batch, scores):
            if score > threshold and len(accepted) < max_captions:
                accepted.append(
                    {**record, "text_score": float(score), "keywords": matcher.find(record["caption"]), "kept": True, "drop_reason": None}
                )
    return pa.Table.from_pylist(accepted, schema=EVAL_SET_SCHEMA), {"pool": len(pool), "scored": scored}
