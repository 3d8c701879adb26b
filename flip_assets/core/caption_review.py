"""The reviewed set of real captions that measures the caption classifier (issue: web captions).

Captions come from the LAION caption corpora, are split into strata by cheap word tests, and a
fixed number is drawn from each stratum with a fixed seed. Each drawn caption carries its
stratum's weight (captions in the stratum / captions drawn), so precision and recall measured
on the sample estimate those on the whole corpus. The split into dev (model selection,
threshold) and test (reported figures) is by a hash of the caption, so a caption that occurs
twice cannot sit in both.

    python -m flip_assets.core.caption_review sample OUT.csv --corpus LAION_FILES... --keywords WORDS...

`flip_assets/face_caption_review.csv` was drawn so, from the two LAION files of the shared
data, with 450 per stratum and the 12 seeds plus the 6 accepted words of the keyword review as
keywords, then labelled by reading each caption against `flip_assets/face_caption_rule.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from flip_assets.core.captions import normalized, read_caption_corpus, tokenize
from flip_assets.core.keywords import SEED_WORDS

# Words that name a person or a portrait: captions with them but without a face keyword are
# where most face descriptions without keywords hide ("portrait of Jesse Eisenberg").
PERSON_WORDS = frozenset(
    """portrait portraits headshot headshots selfie closeup close face faces woman women man men
    girl girls boy boys lady ladies guy child children kid kids baby babies toddler teen teenager
    person people actress actor singer model bride groom celebrity businessman businesswoman
    player smiling laughing beard makeup""".split()
)
STRATA = ("face_keyword", "person_word", "other")
REVIEW_COLUMNS = ("caption_id", "split", "stratum", "weight", "caption", "label", "reason")


def caption_id(caption: str) -> str:
    return hashlib.sha256(normalized(caption).encode("utf-8")).hexdigest()[:16]


def split_of(caption: str, test_share: float = 0.5) -> str:
    return "test" if int(caption_id(caption), 16) % 1000 < test_share * 1000 else "dev"


def stratum_of(caption: str, face_keywords: frozenset[str]) -> str:
    tokens = set(tokenize(caption))
    if tokens & face_keywords:
        return "face_keyword"
    if tokens & PERSON_WORDS:
        return "person_word"
    return "other"


def draw_sample(captions: Iterable[str], face_keywords: Iterable[str], per_stratum: int, seed: int = 7) -> list[dict]:
    """Unique captions drawn per stratum, with their weights; label and reason left blank."""
    keywords = frozenset(k.lower() for k in face_keywords)
    by_stratum: dict[str, list[str]] = {s: [] for s in STRATA}
    seen: set[str] = set()
    for caption in captions:
        if not normalized(caption):
            continue
        cid = caption_id(caption)
        if cid in seen:
            continue
        seen.add(cid)
        by_stratum[stratum_of(caption, keywords)].append(caption)
    rng = random.Random(seed)
    rows = []
    for stratum in STRATA:
        pool = by_stratum[stratum]
        drawn = rng.sample(pool, min(per_stratum, len(pool)))
        weight = len(pool) / len(drawn) if drawn else 0.0
        for caption in drawn:
            rows.append(
                {"caption_id": caption_id(caption), "split": split_of(caption), "stratum": stratum,
                 "weight": round(weight, 4), "caption": caption, "label": None, "reason": None}
            )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["sample"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--corpus", type=Path, nargs="+", required=True)
    parser.add_argument("--per-stratum", type=int, default=400)
    parser.add_argument("--keywords", nargs="*", default=list(SEED_WORDS))
    args = parser.parse_args(argv)
    captions = [c for path in args.corpus for c in read_caption_corpus(path)]
    rows = draw_sample(captions, args.keywords, args.per_stratum)
    table = pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.float64() if c == "weight" else pa.string()) for c in REVIEW_COLUMNS]))
    pacsv.write_csv(table, args.out)
    print(f"{len(rows)} captions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
