"""Face-text training pairs: CelebA faces captioned from their 40 attributes, the way
MM-CelebA-HQ made its captions, and pairs cut from the raw shards.

Captions vary in form (the sentence grammar of face_descriptions.py, "a photo of ... with ...",
comma-separated tags, sentences mentioning what is absent) and in wording (synonyms per
attribute), so that the model cannot key on one template. ATTRIBUTE_PHRASES are the words the
zero-shot prompts use ("a photo of a face with / without {phrase}").
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flip_assets.core.curation.face_descriptions import describe

# attribute -> (phrase after "with", polarity): polarity False means the phrase is present when
# the attribute is absent (No_Beard: "with a beard" is true when No_Beard is -1).
ATTRIBUTE_PHRASES = {
    "5_o_Clock_Shadow": ("a five o'clock shadow", True),
    "Arched_Eyebrows": ("arched eyebrows", True),
    "Attractive": ("attractive features", True),
    "Bags_Under_Eyes": ("bags under the eyes", True),
    "Bald": ("a bald head", True),
    "Bangs": ("bangs", True),
    "Big_Lips": ("big lips", True),
    "Big_Nose": ("a big nose", True),
    "Black_Hair": ("black hair", True),
    "Blond_Hair": ("blond hair", True),
    "Blurry": ("blurry details", True),
    "Brown_Hair": ("brown hair", True),
    "Bushy_Eyebrows": ("bushy eyebrows", True),
    "Chubby": ("chubby cheeks", True),
    "Double_Chin": ("a double chin", True),
    "Eyeglasses": ("eyeglasses", True),
    "Goatee": ("a goatee", True),
    "Gray_Hair": ("gray hair", True),
    "Heavy_Makeup": ("heavy makeup", True),
    "High_Cheekbones": ("high cheekbones", True),
    "Male": ("masculine features", True),
    "Mouth_Slightly_Open": ("a slightly open mouth", True),
    "Mustache": ("a mustache", True),
    "Narrow_Eyes": ("narrow eyes", True),
    "No_Beard": ("a beard", False),
    "Oval_Face": ("an oval face", True),
    "Pale_Skin": ("pale skin", True),
    "Pointy_Nose": ("a pointy nose", True),
    "Receding_Hairline": ("a receding hairline", True),
    "Rosy_Cheeks": ("rosy cheeks", True),
    "Sideburns": ("sideburns", True),
    "Smiling": ("a smile", True),
    "Straight_Hair": ("straight hair", True),
    "Wavy_Hair": ("wavy hair", True),
    "Wearing_Earrings": ("earrings", True),
    "Wearing_Hat": ("a hat", True),
    "Wearing_Lipstick": ("lipstick", True),
    "Wearing_Necklace": ("a necklace", True),
    "Wearing_Necktie": ("a necktie", True),
    "Young": ("youthful features", True),
}
# Other words for the same thing, drawn at random in training captions.
SYNONYMS = {
    "Eyeglasses": ("glasses", "spectacles"),
    "Smiling": ("a big smile", "a grin"),
    "Wearing_Hat": ("a cap", "headwear"),
    "Mouth_Slightly_Open": ("parted lips", "the mouth a little open"),
    "Bald": ("no hair", "a shaved head"),
    "Gray_Hair": ("grey hair", "silver hair"),
    "Blond_Hair": ("blonde hair", "fair hair"),
    "Heavy_Makeup": ("a lot of makeup", "strong makeup"),
    "Pale_Skin": ("a pale complexion", "fair skin"),
    "No_Beard": ("facial hair", "a full beard"),
    "Mustache": ("a moustache",),
    "Wearing_Lipstick": ("red lips", "lip colour"),
    "Bangs": ("a fringe",),
    "Chubby": ("a round full face",),
    "Young": ("a young look",),
    "Attractive": ("good looks",),
}
# Attributes whose absence a caption may state ("without eyeglasses").
SALIENT_ABSENCES = ("Eyeglasses", "Wearing_Hat", "Smiling", "Bald", "No_Beard", "Bangs", "Mustache", "Heavy_Makeup", "Wearing_Earrings")
# The zero-shot split of the 40 attributes, fixed by a rule that looks at no result: the three
# attributes every caption expresses whatever it lists (Male and Young through its noun, "man" /
# "young woman"; Smiling through describe()'s expression sentence) may be named; of the other 37
# in alphabetical order, the 1st, 3rd, 5th, ... may be named (SEEN_ATTRIBUTES) and the 2nd, 4th,
# ... never are (UNSEEN_ATTRIBUTES): CelebA captions say nothing of them, in any wording, so
# zero-shot on them is transfer, not the labels read back.
ALWAYS_EXPRESSED = ("Male", "Young", "Smiling")
_ALTERNATED = [n for n in sorted(ATTRIBUTE_PHRASES) if n not in ALWAYS_EXPRESSED]
SEEN_ATTRIBUTES = tuple(sorted((*ALWAYS_EXPRESSED, *_ALTERNATED[0::2])))
UNSEEN_ATTRIBUTES = tuple(_ALTERNATED[1::2])
PHOTO_WORDS = ("a photo", "a picture", "a close-up photo", "a portrait", "an image", "a headshot")


def present(attributes: dict[str, int], name: str) -> bool:
    """Whether the phrase of `name` holds for this face (attributes +1 present, -1 absent)."""
    return (attributes[name] == 1) == ATTRIBUTE_PHRASES[name][1]


def _phrase(name: str, rng: random.Random) -> str:
    return rng.choice((ATTRIBUTE_PHRASES[name][0], *SYNONYMS.get(name, ())))


def _bare(phrase: str) -> str:
    """ "a hat" -> "hat", for "no hat"."""
    return phrase.split(" ", 1)[1] if phrase.split(" ", 1)[0] in ("a", "an") else phrase


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def attribute_words(name: str) -> tuple[str, ...]:
    """Every wording of an attribute the captions or prompts use (its phrase and synonyms)."""
    return (ATTRIBUTE_PHRASES[name][0], *SYNONYMS.get(name, ()))


def captions_naming(captions: list[str], names: tuple[str, ...]) -> dict[str, int]:
    """Per attribute of `names` that some caption names (any wording, as a whole phrase, any
    case; "a hat" also as "hat"): how many captions name it."""
    counts = {}
    for name in names:
        words = {w for p in attribute_words(name) for w in (p, _bare(p))}
        pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words)) + r")\b", re.IGNORECASE)
        if hits := sum(bool(pattern.search(c)) for c in captions):
            counts[name] = hits
    return counts


def unseen_attribute_facts(captions: list[str]) -> dict:
    """What celeba_caption_pairs' no_unseen_attribute_named check judges: the captions naming an
    attribute of UNSEEN_ATTRIBUTES, and how many name each."""
    named = captions_naming(captions, UNSEEN_ATTRIBUTES)
    any_named = sum(bool(captions_naming([c], UNSEEN_ATTRIBUTES)) for c in captions) if named else 0
    return {"captions_naming_unseen_attributes": any_named, "unseen_attributes_named": named}


def unmentioned(attributes: dict[str, int], named: tuple[str, ...]) -> dict[str, int]:
    """The row with every attribute not in `named` set to the value whose phrase does not hold
    (absent; No_Beard present), so that no caption form mentions it, present or absent."""
    return {n: v if n in named else (-1 if ATTRIBUTE_PHRASES[n][1] else 1) for n, v in attributes.items()}


def caption(attributes: dict[str, int], rng: random.Random, named: tuple[str, ...] = tuple(ATTRIBUTE_PHRASES)) -> tuple[str, str]:
    """(caption, template) for one CelebA row, naming only attributes of `named`."""
    attributes = unmentioned(attributes, named)
    noun = rng.choice(("man", "guy", "gentleman")) if attributes["Male"] == 1 else rng.choice(("woman", "lady", "girl"))
    young = rng.choice(("young ", "")) if attributes["Young"] == 1 else rng.choice(("older ", "middle-aged ", ""))
    on = [n for n in named if present(attributes, n) and n not in ("Male", "Young")]
    rng.shuffle(on)
    on = on[: rng.randint(2, 6)]
    off = [n for n in SALIENT_ABSENCES if n in named and not present(attributes, n)]
    off = rng.sample(off, min(len(off), rng.randint(0, 2)))
    phrases, absent = [_phrase(n, rng) for n in on], [_phrase(n, rng) for n in off]
    template = rng.choice(("sentences", "photo_with", "tags", "with_without"))
    if template == "sentences" or not phrases:
        return describe(attributes, rng), "sentences"
    if template == "photo_with":
        return f"{rng.choice(PHOTO_WORDS)} of a {young}{noun} with {_join(phrases)}.", template
    if template == "tags":
        return ", ".join([f"{young}{noun}".strip(), *phrases, *(f"no {_bare(p)}" for p in absent)]), template
    text = f"{rng.choice(('A', 'The', 'This'))} {young}{noun} with {_join(phrases)}"
    return (f"{text}, without {_join(absent)}." if absent else f"{text}."), template


def attribute_names(path: Path) -> list[str]:
    return [n for n in pq.read_schema(path).names if n in ATTRIBUTE_PHRASES]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAIR_SCHEMA = pa.schema([
    ("source", pa.string()), ("sample_id", pa.string()), ("sha256", pa.string()),
    ("caption", pa.string()), ("template", pa.string()), ("image", pa.binary()),
])  # fmt: skip


def celeba_pairs(path: Path, seed: int, max_samples: int = 0, named: tuple[str, ...] = SEEN_ATTRIBUTES) -> pa.Table:
    """The train split of the CelebA attribute file, one varied caption per face naming only
    attributes of `named` (by default the seen half: UNSEEN_ATTRIBUTES stay for zero-shot). The file has
    no identity column: its split (ids 1-8000 train, 8001-10000 test) is the only one it has;
    no image of the test split may be in training, judged by SHA-256 (see the asset's check)."""
    if not path.is_file():
        raise FileNotFoundError(f"CelebA attributes not found: {path} (set FLIP_CELEBA_ATTR)")
    names = attribute_names(path)
    table = pq.read_table(path, columns=["image", "image_id", "split", *names])
    table = table.filter(pc.equal(table["split"], "train"))
    if max_samples:
        table = table.slice(0, max_samples)
    rng = random.Random(seed)
    rows = []
    for row in table.to_pylist():
        text, template = caption({n: row[n] for n in names}, rng, named)
        rows.append({"source": "celeba", "sample_id": row["image_id"], "sha256": sha256(row["image"]), "caption": text, "template": template, "image": row["image"]})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)


CUT_SIZE = 224  # the paper's input size: shard images are cut to it once, here


def cut_image(data: bytes, size: int = CUT_SIZE) -> bytes:
    """The image resized (shorter side) and centre-cropped to size x size, as JPEG."""
    import io

    from PIL import Image

    from flip_assets.core.training.contrastive_training import decode_square

    buffer = io.BytesIO()
    Image.fromarray(decode_square(data, size).transpose(1, 2, 0)).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def shard_pairs(rows: list[dict], source: str, read_image) -> tuple[pa.Table, dict[str, int]]:
    """Pairs cut from shard samples (key, caption, and what read_image(row) needs), and the count
    of samples dropped per reason: no caption, unreadable or undecodable image. `sha256` is the
    tar member's (raw_shards' image_sha256), so it matches across assets."""
    pairs, dropped = [], {}
    for row in rows:
        reason = None
        if not (row["caption"] or "").strip():
            reason = "no_caption"
        else:
            try:
                data = read_image(row)
                image = cut_image(data) if data else None
                reason = None if image else "no_image"
            except Exception as error:  # a bad sample is dropped with its reason, never fatal
                reason = f"image_error:{type(error).__name__}"
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        pairs.append({"source": source, "sample_id": row["key"], "sha256": row["image_sha256"], "caption": row["caption"].strip(), "template": source, "image": image})  # fmt: skip
    return pa.Table.from_pylist(pairs, schema=PAIR_SCHEMA), dropped
