"""Drawing the reviewed set of captions (caption_review.py) and extending it, so that it stays a
weighted random sample of the LAION caption corpora.

Captions are split into strata by cheap word tests, and a fixed number is drawn from each stratum
with a fixed seed; each drawn caption carries its stratum's weight (captions in the stratum /
captions reviewed).

`flip_assets/face_caption_review.csv` was drawn so, from the two LAION files of the shared
data, with 450 per stratum and the 12 seeds plus the 6 accepted words of the keyword review as
keywords, then labelled by reading each caption against `flip_assets/face_caption_rule.md`.
It was then extended: `extend` (seed 20261130) drew 300 more person-word and 1,050 more other
captions at random from those not yet reviewed; after labelling, `merge` added them and
reweighted every row of those strata. A simple random sample extended by a simple random sample
of the rest is a simple random sample, and so is the reviewed set plus the labelled prefix (in
draw order) of each stratum's extension, which is all `merge` adds: a labeller who stops early
leaves the estimates unbiased, only wider. The commands: `python -m flip_assets.tools.review_captions`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from flip_assets.core.curation.caption_review import REVIEW_COLUMNS, STRATA, caption_id, split_of
from flip_assets.core.curation.captions import normalized, tokenize
from flip_assets.core.curation.keywords import SEED_WORDS

# Words that name a person or a portrait: captions with them but without a face keyword are
# where most face descriptions without keywords hide ("portrait of Jesse Eisenberg").
PERSON_WORDS = frozenset(
    """portrait portraits headshot headshots selfie closeup close face faces woman women man men
    girl girls boy boys lady ladies guy child children kid kids baby babies toddler teen teenager
    person people actress actor singer model bride groom celebrity businessman businesswoman
    player smiling laughing beard makeup""".split()
)
EXTENSION_SEED = 20261130
# The face keywords the face_keyword stratum was drawn with: the seeds and the six words then
# accepted in face_keywords_review.csv. Frozen: a word accepted later must not move reviewed
# captions between strata, or the weights would no longer describe the draw.
REVIEW_KEYWORDS = (*SEED_WORDS, "chin", "confused", "earring", "expression", "eyed", "eyeglass")


def stratum_of(caption: str, face_keywords: frozenset[str]) -> str:
    tokens = set(tokenize(caption))
    if tokens & face_keywords:
        return "face_keyword"
    if tokens & PERSON_WORDS:
        return "person_word"
    return "other"


def strata_pools(captions: Iterable[str], face_keywords: Iterable[str]) -> dict[str, list[str]]:
    """The unique non-empty captions of each stratum, in corpus order (the draws rest on it)."""
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
    return by_stratum


def draw_sample(captions: Iterable[str], face_keywords: Iterable[str], per_stratum: int, seed: int = 7) -> list[dict]:
    """Unique captions drawn per stratum, with their weights; label and reason left blank."""
    by_stratum = strata_pools(captions, face_keywords)
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


def draw_extension(
    captions: Iterable[str], face_keywords: Iterable[str], reviewed_ids: set[str], counts: dict[str, int],
    seed: int = EXTENSION_SEED,
) -> list[dict]:  # fmt: skip
    """More captions to review (EXTENSION_COLUMNS, label and reason blank): `counts[stratum]`
    drawn at random from the stratum's captions not yet reviewed, strata in `counts` order, one
    random generator for all. A simple random sample of the captions left, so the reviewed ones
    plus these are a simple random sample of the stratum, and so is the reviewed set plus any
    prefix of these in draw order (what a labeller who stops early leaves labelled)."""
    by_stratum = strata_pools(captions, face_keywords)
    rng = random.Random(seed)
    rows = []
    for stratum, count in counts.items():
        pool = [c for c in by_stratum[stratum] if caption_id(c) not in reviewed_ids]
        for caption in rng.sample(pool, min(count, len(pool))):
            rows.append(
                {"caption_id": caption_id(caption), "split": split_of(caption), "stratum": stratum, "caption": caption,
                 "label": None, "reason": None}
            )  # fmt: skip
    return rows


def merge_extension(review_rows: Sequence[dict], extension: Sequence[dict]) -> tuple[list[dict], dict[str, int]]:
    """The review rows plus the labelled prefix of each stratum of `extension` (rows in draw
    order; a stratum's rows after its first unlabelled one are left out, so what is added stays
    a random sample), every row of a stratum weighted (captions in the stratum) / (its reviewed
    captions). The stratum sizes are read off the review rows (weight x rows, one weight per
    stratum). Returns the rows and the extension rows added per stratum."""
    sizes: dict[str, float] = {}
    for stratum in STRATA:
        weights = {float(r["weight"]) for r in review_rows if r["stratum"] == stratum}
        if len(weights) != 1:
            raise ValueError(f"stratum {stratum}: expected one weight in the review rows, found {sorted(weights)}")
        sizes[stratum] = weights.pop() * sum(r["stratum"] == stratum for r in review_rows)
    reviewed = {r["caption_id"] for r in review_rows}
    added: dict[str, int] = {s: 0 for s in STRATA}
    stopped: set[str] = set()
    rows = [dict(r) for r in review_rows]
    for row in extension:
        stratum = row["stratum"]
        if stratum not in STRATA:
            raise ValueError(f"extension row of unknown stratum {stratum!r}: {row}")
        if stratum in stopped or str(row["label"]) not in ("0", "1"):
            stopped.add(stratum)
            continue
        if row["caption_id"] in reviewed or row["caption_id"] != caption_id(row["caption"]):
            raise ValueError(f"extension row already reviewed, or its caption_id is not its caption's: {row}")
        reviewed.add(row["caption_id"])
        rows.append({c: row.get(c) for c in REVIEW_COLUMNS} | {"label": int(row["label"]), "split": split_of(row["caption"])})
        added[stratum] += 1
    for stratum in STRATA:
        n = sum(r["stratum"] == stratum for r in rows)
        for r in rows:
            if r["stratum"] == stratum:
                r["weight"] = round(round(sizes[stratum]) / n, 4)
    return rows, added
