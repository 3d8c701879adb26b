"""Caption text: cleaning for the classifier, tokens for Word2Vec and keyword search, corpora.

One cleaning and one tokenisation serve Word2Vec training, keyword matching and the
classifier, so a keyword found in training is found the same way when filtering.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

from flip_assets.core.io import storage

HTML_TAG = re.compile(r"<[^>]{0,500}>")
URL = re.compile(r"(?:https?://|ftp://|www\.)\S*", re.IGNORECASE)
# Letters only: digits, punctuation, emoji and '_' separate tokens.
TOKEN = re.compile(r"[^\W\d_]+")
WHITESPACE = re.compile(r"\s+")
# Column that holds the caption in the corpora we know (img2dataset input, LAION metadata).
CAPTION_COLUMNS = ("caption", "TEXT", "text")


def strip_markup(text: str) -> str:
    """Text without HTML tags, entities and URLs. Most captions have none: a few substring
    tests (fast, in C) spare them the regular expressions."""
    if "<" in text or "&" in text or "://" in text or "www." in text:
        return URL.sub(" ", html.unescape(HTML_TAG.sub(" ", text)))
    return text


def clean_caption(text: str | None) -> str:
    """Caption as the classifier reads it: no HTML, entities, URLs or control characters,
    whitespace collapsed. Empty when nothing readable is left."""
    if not text:
        return ""
    text = strip_markup(text)
    if not text.isprintable():
        # Cc/Cf/Cs/Co/Cn: control, format (zero-width), surrogate, private and unassigned.
        text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    return WHITESPACE.sub(" ", text).strip()


def tokenize(text: str | None) -> list[str]:
    """Lower-case word tokens of a cleaned caption; single letters carry no meaning here."""
    return [t for t in TOKEN.findall(clean_caption(text).lower()) if len(t) > 1]


def normalized(text: str | None) -> str:
    """Identity of a caption for de-duplication: cleaned, lower case."""
    return clean_caption(text).lower()


def read_caption_corpus(path: Path) -> list[str | None]:
    """Captions of a caption-only Parquet corpus (column caption, TEXT or text), one per row."""
    if not path.is_file():
        raise FileNotFoundError(f"caption corpus not found: {path} (set FLIP_CAPTION_CORPUS)")
    names = pq.read_schema(path).names
    column = next((c for c in CAPTION_COLUMNS if c in names), None)
    if column is None:
        raise ValueError(f"caption corpus {path} has none of the columns {CAPTION_COLUMNS}")
    return [None if v is None else str(v) for v in pq.read_table(path, columns=[column]).column(column).to_pylist()]


def sample_shards(home: Path, shards: Iterable[str]) -> list[str]:
    """The shards of a learning sample that raw_shards and face_detections have both written."""
    return [
        s for s in sorted(set(shards))
        if all(storage.partition_path(home, asset_key, s).is_file() for asset_key in ("raw_shards", "face_detections"))
    ]  # fmt: skip


def shard_captions(home: Path, shards: Iterable[str]) -> list[dict]:
    """key, caption, face_kept, face_drop_reason of every raw sample with a caption, over these
    shards (a learning sample) where raw_shards and face_detections have written them."""
    present = sample_shards(home, shards)
    if not present:
        raise FileNotFoundError(
            f"none of the shards {sorted(set(shards))} has raw_shards and face_detections files in {home}: "
            "materialize them first (FLIP_LEARNING_SHARDS names the learning sample)"
        )
    files = {a: [str(storage.partition_path(home, a, s)) for s in present] for a in ("raw_shards", "face_detections")}
    return storage.query(storage.sql_file("shard_captions.sql"), raw_files=files["raw_shards"], detections_files=files["face_detections"])
