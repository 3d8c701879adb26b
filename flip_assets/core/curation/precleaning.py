"""The deterministic pre-clean of a caption (paper 3.1, before the language model).

Removes what is noise whatever the caption says: control characters and terminal escape
sequences, invisible format characters, HTML tags and entities, literal escape sequences, URLs
and domains, file names, stock-photo and shop boilerplate, prices, long IDs, repeated
punctuation and stray separators. It never rewrites words, so it cannot add or change a fact;
the language model pass does the rest.

Controls and escapes (strip_controls):
- C0 and C1 control characters go; those that separate (tab, newline, ...) become a space.
- A complete escape sequence goes whole: CSI "ESC [ params intermediates final" (colours such
  as ESC [31m; a space is not taken as an intermediate byte, "ESC [ smiling" is text after a
  broken escape), OSC "ESC ] ... BEL or ESC \\", charset designations such as ESC ( B, and
  two-byte escapes (ESC 7, ESC =, ESC M, ESC c; a letter is taken only when no lower-case letter
  follows it: "ESC cat" is a stray ESC before "cat"). Any other ESC, or ESC [ / ESC ] that
  begins nothing complete, goes alone (ESC [ is the 7-bit form of the C1 control CSI); the text
  after it stays.
- Invisible format characters that carry no text go without a trace (the letters around them
  join, as a reader sees them): bidi embeddings, overrides and isolates (U+202A-202E,
  U+2066-2069, and the deprecated U+206A-206F), bidi marks (U+200E, U+200F, U+061C), the
  zero-width space U+200B, the BOM / zero-width no-break space U+FEFF, the word joiner and
  invisible operators U+2060-2064, and the soft hyphen U+00AD. Format characters that shape
  text stay: the zero-width joiner U+200D (emoji sequences, Indic scripts), the zero-width
  non-joiner U+200C (Persian), variation selectors and emoji tag characters.

Speed matters (every caption of every shard passes here), so each rule is one compiled
regex, and a rule only runs when a cheap substring test finds what it needs in the caption.
"""

from __future__ import annotations

import codecs
import html
import re

_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)\b[^<>]{0,300}>|<!--.*?-->", re.S)
# Inline tags sit inside words and quotes ("<b>Man</b>'s"); others separate text.
_INLINE_TAGS = frozenset("a abbr b em font i small span strong sub sup u".split())
# Literal escape sequences left by broken scrapers and JSON double-encoding: "\n", "\u00e9".
_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}")
_OTHER_ESCAPE = re.compile(r"\\[nrt\\\"']")
# Terminal escape sequences and C0/C1 control characters (NUL, BEL, ...): invisible as text,
# and harmful in a terminal or a parser downstream. Which escapes go whole: module docstring.
_ESCAPE = (
    r"\x1b(?:"
    r"\[[0-?]*[!-/]*[@-~]"  # CSI: parameters, intermediates (not a space), final byte
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC, up to BEL or ST
    r"|[!-/]+[0-~]"  # charset designations and other nF escapes: ESC ( B
    r"|[0-?`{-~]|[@-Z\[-_a-z](?![a-z])"  # two-byte escapes; a letter that begins a word is text
    r")?"
)
# Invisible format characters that only reorder or hide text (bidi controls, zero-width space,
# BOM, word joiner, soft hyphen); those that shape text (U+200C, U+200D) stay.
_INVISIBLE = "\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_CONTROL = re.compile(_ESCAPE + "|[\x00-\x1f\x7f-\x9f" + _INVISIBLE + "]")
_TLDS = ("com", "net", "org", "co.uk", "de", "fr", "ru", "info", "biz", "io", "us")
_TLD_PATTERN = "|".join(t.replace(".", r"\.") for t in _TLDS)
# Hints: one quick search on the lower-cased caption decides whether the full rule runs.
_URL_HINT = re.compile(r"://|www\.|\.(?:" + _TLD_PATTERN + ")")
_URL = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)\S+|\b[\w.-]+\.(?:" + _TLD_PATTERN + r")\b(?:/\S*)?",
    re.I,
)
_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "heic", "svg", "mp4", "mov", "avi", "pdf", "eps", "psd")
_FILE_HINT = re.compile(r"\.(?:" + "|".join(_EXTENSIONS) + ")")
_FILE_NAME = re.compile(r"\b[\w.~-]+\.(?:" + "|".join(_EXTENSIONS) + r")\b", re.I)
_BOILERPLATE_HINTS = (
    "stock", "royalty", "free ", "premium ", "hd ", "high res", "getty", "dreamstime", "alamy", "123rf",
    "depositphotos", "fotolia", "pinterest", "buy ", "click here", "cheapest",
)  # fmt: skip
_BOILERPLATE = re.compile(
    r"(?:[-|:,]\s*)?\b(?:"
    r"(?:royalty[\s-]free\s+)?stock\s+(?:photo(?:graphy|s)?|images?|pictures?|footage|vectors?|illustrations?)"
    r"|royalty[\s-]free|free\s+(?:photo|vector|download|shipping)|premium\s+(?:photo|vector)"
    r"|(?:hd|high\s+resolution|high\s+res)\s+(?:photo|image|wallpaper|picture)s?"
    r"|shutterstock|getty\s*images|istock(?:photo)?|dreamstime|alamy|123rf|depositphotos|fotolia|adobe\s+stock"
    r"|pinterest|buy\s+(?:now|online)|click\s+here|cheapest\s+price(?:\s+from\s+our\s+site)?"
    r")\b",
    re.I,
)
# Stock sites append "- Image: <the title again>" or "- Image: 12345"; the title repeats the caption.
_IMAGE_SUFFIX = re.compile(r"\s[-|]\s*(?:image|photo|picture):\s.*$", re.I)
_PRICE_HINT = re.compile(r"[$£€¥]|usd|gbp|eur")
_PRICE = re.compile(r"(?:[$£€¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:usd|gbp|eur))?|\b\d[\d,]*(?:\.\d+)?\s?(?:usd|gbp|eur))\b", re.I)
_DIGIT = re.compile(r"\d")
# Tokens with a digit: long digit runs and mixed letter-digit codes (SKUs, hashes, ASINs) are IDs.
_DIGIT_TOKEN = re.compile(r"\b[A-Za-z]*\d[A-Za-z\d]*(?:-[A-Za-z\d]+)*\b")
_REPEATED = re.compile(r"([!?,;:\-_=~*#|/\\\"])\1+|\.{4,}")  # '""' too: CSV quoting gone wrong
_EMPTY_BRACKETS = re.compile(r"\(\s*[-,;:]?\s*\)|\[\s*[-,;:]?\s*\]|\{\s*\}")
_SEPARATOR_RUN = re.compile(r"[-–—|,;:~*/](?: ?[-–—|,;:~*/])+")
_SPACE_BEFORE_PUNCT = re.compile(r" ([,.;:!?)\]])")
_LEADING = " .-–—|:;,~*/#_=+"
_TRAILING = " -–—|:;,~*/#_=+"


def _unescape_sequences(text: str) -> str:
    text = _UNICODE_ESCAPE.sub(lambda m: codecs.decode(m.group(0), "unicode_escape"), text)
    return _OTHER_ESCAPE.sub(lambda m: m.group(0)[1] if m.group(0)[1] in "\"'" else " ", text)


def _drop_id(match: re.Match) -> str:
    token = match.group(0)
    if "-" in token:  # "05308-00", ISBNs; not "22-inch" or "2014-2015"
        parts = token.split("-")
        return " " if all(p.isdigit() for p in parts) and max(map(len, parts)) >= 5 else token
    digits = sum(c.isdigit() for c in token)
    if token.isdigit():
        return " " if digits >= 5 else token
    return " " if len(token) >= 7 and digits >= 2 and len(token) - digits >= 2 else token


def _collapse_separators(match: re.Match) -> str:
    # Keep the strongest separator of a run that removals left behind ("Woman , - | Free" -> "Woman -").
    run = match.group(0)
    for sep in ("—", "–", "-", "|", ";", ":", ","):
        if sep in run:
            return "," if sep == "," else f" {sep} "
    return " "


def strip_controls(text: str) -> str:
    """text without control characters, terminal escape sequences and invisible format
    characters; a control that separates (tab, newline, ...) becomes a space."""
    if text.isprintable():  # the common case, one pass in C
        return text
    return _CONTROL.sub(lambda m: " " if m.group(0).isspace() else "", text)


def preclean(text: str | None) -> str:
    """The caption without markup, links, file names, boilerplate and symbol noise; '' when
    nothing is left."""
    if not text:
        return ""
    original = " ".join(text.split())
    if "&" in text:
        text = html.unescape(html.unescape(text))  # captions are often HTML-escaped twice
    if "\\" in text:
        text = _unescape_sequences(text)
    # After unescaping: "&#27;" and "\\u001b" decode to controls.
    text = strip_controls(text)
    if "<" in text:
        text = _TAG.sub(lambda m: "" if (m.group(1) or "").lower() in _INLINE_TAGS else " ", text)
    lower = text.lower()
    if _URL_HINT.search(lower):
        text = _URL.sub(" ", text)
    if _FILE_HINT.search(lower):
        text = _FILE_NAME.sub(" ", text)
    if ":" in text:
        text = _IMAGE_SUFFIX.sub(" ", text)
    if any(t in lower for t in _BOILERPLATE_HINTS):
        text = _BOILERPLATE.sub(" ", text)
    if _PRICE_HINT.search(lower):
        text = _PRICE.sub(" ", text)
    if _DIGIT.search(text):
        text = _DIGIT_TOKEN.sub(_drop_id, text)
    text = _REPEATED.sub(lambda m: m.group(0)[0] if m.group(0)[0] != "." else "...", text)
    if "(" in text or "[" in text or "{" in text:
        text = _EMPTY_BRACKETS.sub(" ", text)
    text = " ".join(text.split())
    if text != original:  # removals leave separators and spaces behind; the writer's own stay
        text = _SEPARATOR_RUN.sub(_collapse_separators, text)
        text = " ".join(_SPACE_BEFORE_PUNCT.sub(r"\1", text).split())
    return text.lstrip(_LEADING).rstrip(_TRAILING)
