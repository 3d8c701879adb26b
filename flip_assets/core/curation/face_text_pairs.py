"""Textual filtering of face pairs (paper 3.1): keep a face-detected sample when the caption
classifier says its caption describes a face.

Every input row gets one output row: a score, or a drop reason when there is nothing
sensible to score. Emoji, other languages and control characters are scored like any text.
"""

from __future__ import annotations

import pyarrow as pa

from flip_assets.core.curation.caption_classifier import score_texts
from flip_assets.core.curation.captions import clean_caption
from flip_assets.core.curation.keywords import KeywordMatcher

# The contract the next stage (denoised_captions) relies on.
FACE_TEXT_PAIRS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),  # as in raw_shards; the classifier reads its cleaned form
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("text_score", pa.float32()),  # P(caption describes a face); null when not scored
        ("keywords", pa.list_(pa.string())),  # face keywords found in the caption
        ("kept", pa.bool_()),
        ("drop_reason", pa.string()),  # null when kept
    ]
)
MISSING_CAPTION = "missing_caption"
EMPTY_CAPTION = "empty_caption"  # empty, whitespace, or only markup and links
CAPTION_TOO_LONG = "caption_too_long"
LOW_TEXT_SCORE = "text_score_below_threshold"
DROP_REASONS = (MISSING_CAPTION, EMPTY_CAPTION, CAPTION_TOO_LONG, LOW_TEXT_SCORE)


def filter_face_pairs(
    rows: list[dict],
    matcher: KeywordMatcher,
    model,
    tokenizer,
    keep_threshold: float,
    max_chars: int,
    batch_size: int,
    max_length: int,
) -> pa.Table:
    """rows: key, url, caption, width, height of the samples face_detections kept."""
    out, texts, scored = [], [], []
    for row in rows:
        caption = row["caption"]
        record = {**{k: row[k] for k in ("key", "url", "caption", "width", "height")}, "text_score": None, "keywords": []}
        if caption is None:
            reason = MISSING_CAPTION
        elif len(caption) > max_chars:
            reason = CAPTION_TOO_LONG  # checked before cleaning: never spend time on a page dump
        else:
            text = clean_caption(caption)
            reason = None if text else EMPTY_CAPTION
        if reason is None:
            record["keywords"] = matcher.find(text)
            texts.append(text)
            scored.append(record)
        else:
            record.update(kept=False, drop_reason=reason)
        out.append(record)
    for record, score in zip(scored, score_texts(model, tokenizer, texts, batch_size, max_length)):
        kept = bool(score > keep_threshold)
        record.update(text_score=float(score), kept=kept, drop_reason=None if kept else LOW_TEXT_SCORE)
    return pa.Table.from_pylist(out, schema=FACE_TEXT_PAIRS_SCHEMA)
