"""The deterministic pre-clean, on real LAION captions and on constructed noise."""

import pytest

from flip_assets.core.curation.precleaning import preclean, strip_controls


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        # Real LAION captions (../shared/data/laion).
        ("Woman with suitcase isolated on white - stock photo", "Woman with suitcase isolated on white"),
        ("Girl with microphone Royalty Free Stock Photos", "Girl with microphone"),
        ("Stock Photo: Woman standing on a lavender field", "Woman standing on a lavender field"),
        ("Photo of the Leather Woman Sandal Beige (33e43bg)", "Photo of the Leather Woman Sandal Beige"),
        (
            '"""Ed Burns at the Los Angeles premiere of """"<a href=""""http://movies.yahoo.com/movie/man-on-a-ledge/"""">'
            'Man on a Ledge</a>"""" on January 23, 2012."""',
            '"Ed Burns at the Los Angeles premiere of "Man on a Ledge" on January 23, 2012."',
        ),
        (
            "SKECHERS WOMAN'S SYNTHETIC CASUAL COMFORT BEACH THONG BLING SANDAL EUC S... - £22.15 GBP",
            "SKECHERS WOMAN'S SYNTHETIC CASUAL COMFORT BEACH THONG BLING SANDAL EUC S...",
        ),
        (
            "Boy Child: The Best of Scott Walker 1967–1970 - Image: Boy Child The Best of Scott Walker 1967 1970",
            "Boy Child: The Best of Scott Walker 1967–1970",
        ),
        # Constructed: entities (twice escaped), tags, escapes, file names, URLs, IDs, repeats.
        ("Smiling senior woman with grey hair &amp;amp; glasses | Free Photo", "Smiling senior woman with grey hair & glasses"),
        ("<b>Portrait</b> of a man w/ beard!!!! IMG_2034.JPG\\nby John", "Portrait of a man w/ beard! by John"),
        ("Caf\\u00e9 girl smiling ---- \\\"happy\\\"", 'Café girl smiling - "happy"'),
        ("Young Businessman Holding Laptop Stock Image - Image: 23345671", "Young Businessman Holding Laptop"),
        ("smiling boy www.example.com/photos?id=1 ,,, see https://x.org", "smiling boy, see"),
        ("A man in C++ class, 3/4 view, 1.5 m tall... really?? yes!!", "A man in C++ class, 3/4 view, 1.5 m tall... really? yes!"),
        ("Kryolan Prof.Eyeshadow  Set 8 colours 05308-00", "Kryolan Prof.Eyeshadow Set 8 colours"),
        ("Prom Dresses 2014-2015 for girls, 22-inch doll, ISBN 978-3-16-148410-0", "Prom Dresses 2014-2015 for girls, 22-inch doll, ISBN"),
        ("IMG_1234.jpg", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_preclean(caption, expected):
    assert preclean(caption) == expected


def test_preclean_keeps_clean_captions_and_face_words():
    clean = "Close-up portrait of a young woman with freckles smiling at the camera."
    assert preclean(clean) == clean
    assert preclean(preclean("Happy girl -- stock photo!!")) == preclean("Happy girl -- stock photo!!")


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("Smiling\x00 woman with glasses\x07", "Smiling woman with glasses"),
        ("\x1b[31mRed-haired girl\x1b[0m portrait", "Red-haired girl portrait"),
        ("\x1b]0;pwned\x07man with\tbeard\r\n", "man with beard"),
        ("boy \\u001b[1mlaughing\\u0007", "boy laughing"),  # controls that unescaping makes
        ("C1 \x9b\x85control\x7f", "C1 control"),
        # Ordinary Unicode text stays: accents, CJK, emoji (with zero-width joiners); spaces are spaces.
        ("Café señora sonriente, 微笑的女人 👩\u200d🦰 à\xa0Paris", "Café señora sonriente, 微笑的女人 👩\u200d🦰 à Paris"),
    ],
)
def test_control_characters_and_terminal_escapes_are_stripped(caption, expected):
    assert preclean(caption) == expected
    assert strip_controls(expected) == expected


def test_strip_controls_keeps_text_and_separates_on_whitespace_controls():
    assert strip_controls("smiling\nwoman\x1b[2J\x00") == "smiling woman"
    assert strip_controls("naïve 笑顔 😀") == "naïve 笑顔 😀"


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        # A stray ESC (or a broken "ESC [") goes alone; the text after it stays.
        ("woman\x1b[ smiling", "woman smiling"),
        ("woman\x1b smiling", "woman smiling"),
        ("woman \x1bSmiling at the camera", "woman Smiling at the camera"),
        ("girl\x1b", "girl"),
        ("old man \x1b\x1b[1mlaughing", "old man laughing"),
        # Complete sequences still go whole: CSI with parameters, two-byte and charset escapes.
        ("\x1b[31mred\x1b[0m hair, \x1b[1;32;40mgreen\x1b[m eyes", "red hair, green eyes"),
        ("\x1b7boy\x1b8 \x1bc\x1b(Bwith cap\x1b[K", "boy with cap"),
        ("girl with \x1bcat", "girl with cat"),  # a letter that begins a word is text, not ESC c
        # Bidi embeddings, overrides, isolates and marks, zero-width space, BOM, word joiner and
        # soft hyphen are invisible: removed without a trace, the letters around them joined.
        ("\ufeffsmiling \u202ewoman\u202c with \u2067glasses\u2069", "smiling woman with glasses"),
        ("smi\u00adling wo\u200bman\u2060 \u200eboy\u200f \u202a\u202b\u202d\u2066\u2068x\u061c", "smiling woman boy x"),
        ("&#8203;happy&shy;girl &#x202E;", "happygirl"),
        # Joiners that shape text stay: ZWJ of emoji, ZWNJ of Persian.
        ("👨\u200d👩\u200d👧 family, می\u200cخواهم", "👨\u200d👩\u200d👧 family, می\u200cخواهم"),
    ],
)
def test_stray_escapes_and_invisible_format_characters(caption, expected):
    assert preclean(caption) == expected
    assert strip_controls(expected) == expected
