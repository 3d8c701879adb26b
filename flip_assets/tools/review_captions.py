"""Draw, extend and merge the reviewed set of real captions (flip_assets/face_caption_review.csv)
that measures the caption classifier; how and why: core/curation/caption_review_sampling.py.

    python -m flip_assets.tools.review_captions sample OUT.csv --corpus LAION_FILES... --keywords WORDS...
    python -m flip_assets.tools.review_captions extend OUT.csv --corpus LAION_FILES... [--count person_word=300 other=1050]
    python -m flip_assets.tools.review_captions merge OUT.csv   # once OUT.csv is labelled
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flip_assets.core.curation.caption_review import (
    DEFAULT_REVIEW,
    EXTENSION_COLUMNS,
    REVIEW_COLUMNS,
    STRATA,
    load_review,
    read_csv_rows,
    write_csv_rows,
)
from flip_assets.core.curation.caption_review_sampling import (
    EXTENSION_SEED,
    REVIEW_KEYWORDS,
    draw_extension,
    draw_sample,
    merge_extension,
)
from flip_assets.core.curation.captions import read_caption_corpus
from flip_assets.core.curation.keywords import SEED_WORDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="draw a new review file")
    sample.add_argument("out", type=Path)
    sample.add_argument("--corpus", type=Path, nargs="+", required=True)
    sample.add_argument("--per-stratum", type=int, default=400)
    sample.add_argument("--keywords", nargs="*", default=list(SEED_WORDS))
    extend = commands.add_parser("extend", help="draw more captions to review, none of them reviewed yet")
    extend.add_argument("out", type=Path)
    extend.add_argument("--review", type=Path, default=DEFAULT_REVIEW)
    extend.add_argument("--corpus", type=Path, nargs="+", required=True)
    extend.add_argument("--keywords", nargs="+", default=list(REVIEW_KEYWORDS), help="as the review file was drawn")
    extend.add_argument("--count", nargs="+", default=["person_word=300", "other=1050"], help="STRATUM=N, in draw order")
    extend.add_argument("--seed", type=int, default=EXTENSION_SEED)
    merge = commands.add_parser("merge", help="add the labelled rows of an extension to the review file, reweighted")
    merge.add_argument("extension", type=Path)
    merge.add_argument("--review", type=Path, default=DEFAULT_REVIEW)
    args = parser.parse_args(argv)
    if args.command == "sample":
        captions = [c for path in args.corpus for c in read_caption_corpus(path)]
        rows = draw_sample(captions, args.keywords, args.per_stratum)
        write_csv_rows(args.out, rows, REVIEW_COLUMNS)
    elif args.command == "extend":
        counts = {stratum: int(n) for stratum, n in (item.split("=", 1) for item in args.count)}
        unknown = set(counts) - set(STRATA)
        if unknown:
            parser.error(f"unknown strata {sorted(unknown)}: use {STRATA}")
        captions = [c for path in args.corpus for c in read_caption_corpus(path)]
        reviewed = {r["caption_id"] for r in read_csv_rows(args.review, REVIEW_COLUMNS)}
        rows = draw_extension(captions, args.keywords, reviewed, counts, args.seed)
        write_csv_rows(args.out, rows, EXTENSION_COLUMNS)
    else:
        rows, added = merge_extension(load_review(args.review), read_csv_rows(args.extension, EXTENSION_COLUMNS))
        write_csv_rows(args.review, rows, REVIEW_COLUMNS)
        print(f"added {added} labelled captions of {args.extension}")
        args.out = args.review
    print(f"{len(rows)} captions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
