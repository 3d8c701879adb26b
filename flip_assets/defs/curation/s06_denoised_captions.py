"""Stage 6: denoised_captions, the captions of face-text pairs cleaned by a language model
(paper 3.1 "Text Denoising with Language Models"), and the quality figures of 3.2 on an
evaluation set of real noisy face captions (denoising_eval_set -> denoising_evaluation)."""


import pyarrow as pa
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.curation.denoiser import (
    DENOISED_SCHEMA,
    DenoiseSettings,
    DenoisingOutage,
    FallbackShares,
    add_perplexities,
    denoise_rows,
    fallback_shares,
)
from flip_assets.core.curation.denoising_eval import EVAL_SET_SCHEMA, sample_accepted_captions
from flip_assets.core.curation.keywords import used_keywords
from flip_assets.defs.asset_keys import (
    CAPTION_CLASSIFIER, DENOISED_CAPTIONS, DENOISING_EVALUATION, DENOISING_EVAL_SET, FACE_KEYWORDS, FACE_TEXT_PAIRS,
)
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check, Facts
from flip_assets.defs.shards import SHARD_TAG, SINGLE_RUN_BACKFILL, per_shard, shard_partitions
from flip_assets.defs.curation.resources import CaptionCorpus, CaptionFilterResource, LLMResource
from flip_assets.defs.shared_resources import PerplexityResource
from flip_assets.defs.storage import FlipStorage


def _accounted(facts: Facts) -> int:
    return facts["llm"] + facts["fallback"] + facts["dropped"]


# Judged from denoised_captions_checks.sql, the fallback shares and FLIP_LLM_MAX_FALLBACK_SHARE;
# the same for the shards and for the evaluation set.
CHECKS = (
    Check(
        "every_caption_accounted_for",
        "Every input caption has one row: refined by the language model, the pre-cleaned text with the reason it "
        "fell back, or dropped with its reason. No other key, none twice, no unkept pair refined.",
        blocking=True, zero=("missing_from_output", "not_in_input", "duplicate_keys", "unkept_denoised"),
        passed=lambda f: _accounted(f) == f["input_captions"],
        metadata=lambda f: {"input": f["input_captions"], "llm_plus_fallback_plus_dropped": _accounted(f)},
    ),  # fmt: skip
    Check(
        "no_empty_text", "Every caption not dropped has a non-blank text; a dropped one has none.",
        blocking=True, zero=("empty_texts", "dropped_with_text"),
    ),  # fmt: skip
    Check(
        "face_keywords_kept", "The language model removed no face keyword that the pre-cleaned caption had.",
        blocking=True, zero=("lost_keywords",),
    ),  # fmt: skip
    # Above the share the asset has failed already (an outage); the check shows how close it came.
    Check(
        "fallback_share_below_outage",
        "Of the captions put to the language model, at most FLIP_LLM_MAX_FALLBACK_SHARE fell back to the "
        "pre-cleaned text (above it the run fails as an outage).",
        blocking=True, passed=lambda f: f["shares"].share <= f["max_fallback_share"],
        metadata=lambda f: {
            "fallback_share": f["shares"].share, "max_fallback_share": f["max_fallback_share"],
            "captions_put_to_llm": f["shares"].asked, "by_reason": MetadataValue.json(f["shares"].by_reason),
        },
    ),  # fmt: skip
)


def _denoise(
    context: AssetExecutionContext,
    asset_key: str,
    partition,
    input_path,
    flip_storage: FlipStorage,
    llm: LLMResource,
    perplexity: PerplexityResource,
    extra_metadata: dict | None = None,
) -> MaterializeResult:
    """Denoise the rows at input_path into asset_key, with checks and quality figures."""
    rows = storage.read_table(input_path).to_pylist()
    client = llm.client(flip_storage)
    if not llm.base_url:
        context.log.info(f"OPENAI_BASE_URL not set: the local llama.cpp server {llm.endpoint}")
    try:
        model = client.resolve_model(llm.model)

        def progress(done: int, total: int) -> None:
            if done == total or done % 25 == 0:
                context.log.info(f"{asset_key} {partition or ''}: {done}/{total} captions through {model}")

        settings = DenoiseSettings(max_fallback_share=llm.max_fallback_share)
        out = denoise_rows(rows, client, model, settings, progress=progress)
    except DenoisingOutage as outage:
        raise Failure(description=str(outage), metadata=fallback_metadata(outage.shares)) from outage
    finally:
        client.close()
    shares = fallback_shares(out)
    scorer = perplexity.get_scorer()
    add_perplexities(out, scorer.score_many)
    path = flip_storage.write(asset_key, partition, pa.Table.from_pylist(out, schema=DENOISED_SCHEMA))

    facts = storage.query(storage.sql_file("denoised_captions_checks.sql"), path=str(path), input_path=str(input_path))[0]
    outcomes = storage.query(storage.sql_file("denoised_captions_outcomes.sql"), path=str(path))
    quality = storage.query(storage.sql_file("denoising_quality.sql"), path=str(path))[0]
    preview = [
        {"caption": r["caption"][:120], "denoised": (r["denoised"] or "")[:120], "outcome": r["outcome"]}
        for r in out[:10]
    ]
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "model": model,
            "base_url": llm.endpoint,
            "perplexity_model": scorer.name,
            "input_captions": facts["input_captions"],
            "by_llm": facts["llm"],
            "fallback": facts["fallback"],
            "dropped": facts["dropped"],
            "outcomes": MetadataValue.json({o["outcome"]: o["captions"] for o in outcomes}),
            **fallback_metadata(shares),
            **quality_metadata(quality),
            **{f"llm_{k}": v for k, v in client.stats.as_dict().items()},
            "preview": MetadataValue.md(pa.Table.from_pylist(preview).to_pandas().to_markdown(index=False)) if preview else "",
            **(extra_metadata or {}),
        },
        check_results=AssetChecks(asset_key, *CHECKS).results(
            {**facts, "shares": shares, "max_fallback_share": llm.max_fallback_share}
        ),
    ))


def fallback_metadata(shares: FallbackShares) -> dict:
    return {
        "llm_fallback_share": shares.share,
        "llm_fallback_shares": MetadataValue.json(shares.by_reason),
        "captions_put_to_llm": shares.asked,
    }


def quality_metadata(quality: dict, prefix: str = "") -> dict:
    def num(value):
        return float(value) if value is not None else float("nan")

    return {
        f"{prefix}captions_denoised": quality["captions"],
        f"{prefix}chars_removed_share": num(quality["chars_removed_share"]),
        f"{prefix}chars_removed_by_preclean_share": num(quality["chars_removed_by_preclean_share"]),
        f"{prefix}ppl_before_mean": num(quality["ppl_before_mean"]),
        f"{prefix}ppl_after_mean": num(quality["ppl_after_mean"]),
        f"{prefix}ppl_before_median": num(quality["ppl_before_median"]),
        f"{prefix}ppl_after_median": num(quality["ppl_after_median"]),
    }


@asset(
    partitions_def=shard_partitions,
    tags=SHARD_TAG,
    deps=[FACE_TEXT_PAIRS],
    kinds={"llm", "parquet"},
    check_specs=AssetChecks(DENOISED_CAPTIONS, *CHECKS).specs,
    code_version="1",
    pool="llm",
    backfill_policy=SINGLE_RUN_BACKFILL,
    automation_condition=REFRESH_ON_CHANGE,
)
@per_shard
def denoised_captions(
    context: AssetExecutionContext, flip_storage: FlipStorage, llm: LLMResource, perplexity: PerplexityResource
) -> MaterializeResult:
    """The caption of every kept face-text pair, pre-cleaned then refined by the language model
    (validated; else the pre-cleaned text with the reason). Unkept pairs are accounted as
    dropped with their upstream reason. Replies are cached: a re-run pays nothing twice."""
    shard = context.partition_key
    return _denoise(
        context, DENOISED_CAPTIONS, shard, flip_storage.path(FACE_TEXT_PAIRS, shard), flip_storage, llm, perplexity
    )


class DenoisingEvalConfig(Config):
    # Evaluated captions: enough for stable means, few enough for a few minutes on 2 CPU cores.
    max_captions: int = 120
    seed: int = 0


@asset(
    deps=[CAPTION_CLASSIFIER, FACE_KEYWORDS],
    kinds={"parquet"},
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    pool="classifier",
    automation_condition=REFRESH_ON_CHANGE,
)
def denoising_eval_set(
    context: AssetExecutionContext,
    config: DenoisingEvalConfig,
    flip_storage: FlipStorage,
    caption_corpus: CaptionCorpus,
    caption_filter: CaptionFilterResource,
) -> MaterializeResult:
    """Real noisy face captions to measure denoising on: captions of the caption corpus (LAION)
    that the caption classifier accepts, in a seeded random order, up to max_captions."""
    classifier_dir = flip_storage.caption_classifier_dir()
    threshold = caption_filter.threshold(classifier_dir)
    table, facts = sample_accepted_captions(
        corpora=caption_corpus.files,
        classifier_dir=classifier_dir,
        keywords=used_keywords(flip_storage.path(FACE_KEYWORDS)),
        max_captions=config.max_captions,
        seed=config.seed,
        threshold=threshold,
        max_chars=caption_filter.max_caption_chars,
        max_length=caption_filter.max_length,
        device=caption_filter.device,
    )
    path = flip_storage.write(DENOISING_EVAL_SET, None, table)
    context.log.info(f"{table.num_rows} accepted captions out of {facts['scored']} scored")
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "captions": table.num_rows,
            "scored": facts["scored"],
            "accepted_share_of_scored": table.num_rows / facts["scored"] if facts["scored"] else 0.0,
            "pool": facts["pool"],
            "keep_threshold": threshold,
            "schema": MetadataValue.md(", ".join(EVAL_SET_SCHEMA.names)),
        }
    ))


@asset(
    deps=[DENOISING_EVAL_SET, DENOISED_CAPTIONS],
    kinds={"llm", "parquet"},
    check_specs=AssetChecks(DENOISING_EVALUATION, *CHECKS).specs,
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    pool="llm",
    automation_condition=REFRESH_ON_CHANGE,
)
def denoising_evaluation(
    context: AssetExecutionContext, flip_storage: FlipStorage, llm: LLMResource, perplexity: PerplexityResource
) -> MaterializeResult:
    """The evaluation set denoised exactly as the shards are, with the quality figures of the
    paper (characters removed, perplexity before and after); also the figures over all shards."""
    shards = flip_storage.path(DENOISED_CAPTIONS, "*")
    overall = {}
    if any(shards.parent.glob(shards.name)):
        figures = storage.query(storage.sql_file("denoising_quality.sql"), path=str(shards))[0]
        overall = quality_metadata(figures, prefix="all_shards_")
    return _denoise(
        context, DENOISING_EVALUATION, None, flip_storage.path(DENOISING_EVAL_SET), flip_storage, llm, perplexity,
        extra_metadata=overall,
    )  # fmt: skip
