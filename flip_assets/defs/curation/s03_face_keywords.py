"""Stage 3: face_keywords, Word2Vec neighbours of the paper's 12 seed words, screened by a
person in a reviewed file (paper 3.1, textual filtering)."""


import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetCheckSeverity, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.curation.captions import read_caption_corpus, sample_shards, shard_captions, tokenize
from flip_assets.core.curation.keywords import (
    SEED_WORDS,
    USED_STATES,
    expand_seeds,
    keyword_table,
    load_review,
    save_word2vec,
    train_word2vec,
)
from flip_assets.defs.asset_keys import FACE_DETECTIONS, FACE_KEYWORDS, RAW_SHARDS
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.shards import LEARNING_SHARDS, SINGLE_RUN_BACKFILL, learning_sample_deps
from flip_assets.defs.curation.resources import CaptionCorpus, KeywordMiningResource
from flip_assets.defs.storage import FlipStorage

# Judged from face_keywords_checks.sql and the review file's path.
CHECKS = AssetChecks(
    FACE_KEYWORDS,
    Check(
        "every_seed_word_listed", "Each of the paper's 12 seed words is listed, as a seed.", blocking=True,
        passed=lambda f: not f["missing_seeds"], metadata=lambda f: {"missing_seeds": MetadataValue.json(f["missing_seeds"] or [])},
    ),  # fmt: skip
    Check("unique_words", "No word twice.", blocking=True, zero=("duplicate_words",)),
    Check(
        "every_candidate_reviewed",
        "Every Word2Vec candidate has a decision in the review file (a warning: unreviewed words are not used; "
        "the materialization lists them to paste into the file).",
        zero=("unreviewed",), metadata=lambda f: {"review_file": MetadataValue.path(f["review_file"])},
        severity=AssetCheckSeverity.WARN,
    ),  # fmt: skip
)


@asset(
    deps=learning_sample_deps(RAW_SHARDS, FACE_DETECTIONS),
    kinds={"gensim", "parquet"},
    check_specs=CHECKS.specs,
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    automation_condition=REFRESH_ON_CHANGE,
)
def face_keywords(
    context: AssetExecutionContext,
    flip_storage: FlipStorage,
    caption_corpus: CaptionCorpus,
    keyword_mining: KeywordMiningResource,
) -> MaterializeResult:
    """Seed words, their Word2Vec neighbours (top 10) and neighbours of those (top 3), each with
    its seed, similarity and review state. Seeds and accepted words are the face keywords;
    unreviewed candidates are listed in the metadata for a person to add to the review file.

    Trained once on a fixed sample: the face pairs of the shards FLIP_LEARNING_SHARDS names
    (default 00000 to 00009; those written so far) plus the caption corpora. A new shard outside
    the sample leaves it in sync: the keywords do not drift as shards arrive, and a re-run
    costs the sample, not the dataset."""
    home = flip_storage.local_home(RAW_SHARDS, FACE_DETECTIONS)
    shards = sample_shards(home, LEARNING_SHARDS)
    face_captions = [row["caption"] for row in shard_captions(home, shards) if row["face_kept"]]
    corpus_captions = [caption for path in caption_corpus.files for caption in read_caption_corpus(path)]
    sentences = [tokens for tokens in map(tokenize, face_captions + corpus_captions) if tokens]
    settings = keyword_mining.settings()
    context.log.info(f"training Word2Vec on {len(sentences)} captions ({len(face_captions)} of face pairs)")
    started = time.perf_counter()
    model = train_word2vec(sentences, settings)
    train_seconds = time.perf_counter() - started
    model_path = save_word2vec(model, flip_storage.directory(FACE_KEYWORDS) / "word2vec.model")

    review_path = Path(keyword_mining.review_file)
    counts = Counter(token for tokens in sentences for token in tokens)
    table = keyword_table(expand_seeds(model), load_review(review_path), counts)
    path = flip_storage.write(FACE_KEYWORDS, None, table)
    facts = storage.query(storage.sql_file("face_keywords_checks.sql"), path=str(path), seeds=list(SEED_WORDS))[0]
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "word2vec_model": MetadataValue.path(str(model_path)),
            "review_file": MetadataValue.path(str(review_path)),
            "training_captions": len(sentences),
            "learning_shards": MetadataValue.json(shards),
            "face_pair_captions": len(face_captions),
            "vocabulary": len(model.wv),
            "train_seconds": round(train_seconds, 1),
            "word2vec_settings": MetadataValue.json(vars(settings)),
            "keywords_used": facts["used"],
            "accepted": facts["accepted"],
            "rejected": facts["rejected"],
            "unreviewed": facts["unreviewed"],
            # Paste into the review file with a decision and a reason.
            "unreviewed_words": MetadataValue.md("```\n" + "".join(f"{w},,\n" for w in facts["unreviewed_words"] or []) + "```"),
            "seeds_missing_from_vocabulary": MetadataValue.json([w for w in SEED_WORDS if w not in model.wv]),
            "keywords": MetadataValue.md(
                table.filter(pc.is_in(table["review"], pa.array(USED_STATES)))
                .select(["word", "seed", "similarity", "review"]).to_pandas().to_markdown(index=False)
            ),
        },
        check_results=CHECKS.results({**facts, "review_file": str(review_path)}),
    ))
