"""Stage 7: aigc_samples, AI-generated face images from recaptioned face-text pairs (paper 3.1
"AI-Generated Content Augmentation"). Needs a paid API: empty when none is configured."""


import pyarrow as pa
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.curation.aigc import AIGC_SCHEMA, IMAGE_SIZE, Prices, generate_samples, sample_pairs
from flip_assets.core.io.shards import read_sample_image
from flip_assets.defs.asset_keys import AIGC_SAMPLES, FACE_TEXT_PAIRS, RAW_SHARDS
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.shards import SINGLE_RUN_BACKFILL
from flip_assets.defs.curation.resources import AIGCResource
from flip_assets.defs.storage import FlipStorage

NO_BACKEND = (
    "no backend configured: set FLIP_AIGC_BASE_URL (e.g. https://api.openai.com/v1) and OPENAI_API_KEY "
    "to recaption sampled pairs and generate images"
)


# Judged from aigc_samples_checks.sql and the number of pairs chosen.
CHECKS = AssetChecks(
    AIGC_SAMPLES,
    Check(
        "every_sample_accounted_for", "One row per chosen pair, each with a status.", blocking=True,
        zero=("without_status",), passed=lambda f: f["samples"] == f["chosen"],
        metadata=lambda f: {"chosen": f["chosen"], "rows": f["samples"]},
    ),  # fmt: skip
    Check(
        "images_decode_at_1024",
        f"Every generated image is {IMAGE_SIZE}x{IMAGE_SIZE}; every sample with status ok has its image, size and caption.",
        blocking=True, zero=("wrong_size", "ok_incomplete"), metadata=lambda f: {"size": f"{IMAGE_SIZE}x{IMAGE_SIZE}"},
    ),  # fmt: skip
)


class AigcConfig(Config):
    samples: int = 4
    seed: int = 0


@asset(
    deps=[FACE_TEXT_PAIRS, RAW_SHARDS],
    kinds={"openai", "parquet"},
    check_specs=CHECKS.specs,
    code_version="1",
    backfill_policy=SINGLE_RUN_BACKFILL,
    pool="aigc_api",
    # No automation_condition: every run is paid; it runs only when someone asks.
)
def aigc_samples(
    context: AssetExecutionContext, config: AigcConfig, flip_storage: FlipStorage, aigc: AIGCResource
) -> MaterializeResult:
    """`samples` face-text pairs (chosen by `seed`) recaptioned by a vision model (general + face
    caption) and redrawn by an image model at 1024x1024, with model names and cost."""
    metadata = {"vision_model": aigc.vision_model, "image_model": aigc.image_model}
    chosen: list[dict] = []
    rows: list[dict] = []
    spent = 0.0
    if not aigc.configured:
        context.log.warning(NO_BACKEND)
        metadata["note"] = NO_BACKEND
    else:
        pairs, raw = flip_storage.path(FACE_TEXT_PAIRS, "*"), flip_storage.path(RAW_SHARDS, "*")
        candidates = []
        if any(pairs.parent.glob(pairs.name)):
            candidates = storage.query(storage.sql_file("aigc_candidates.sql"), pairs=str(pairs), raw=str(raw))
        chosen = sample_pairs(candidates, config.samples, config.seed)
        for pair in chosen:
            pair["image"] = read_sample_image(pair)
        client = aigc.client(flip_storage)
        try:
            rows, spent = generate_samples(
                chosen,
                client,
                aigc.vision_model,
                aigc.image_model,
                Prices(aigc.image_price_usd, aigc.input_usd_per_mtok, aigc.output_usd_per_mtok),
            )
        finally:
            client.close()
        metadata.update({"base_url": aigc.base_url, **{f"api_{k}": v for k, v in client.stats.as_dict().items()}})
    path = flip_storage.write(AIGC_SAMPLES, None, pa.Table.from_pylist(rows, schema=AIGC_SCHEMA))
    facts = storage.query(storage.sql_file("aigc_samples_checks.sql"), path=str(path))[0]
    preview = [{"source_key": r["source_key"], "caption": (r["caption"] or "")[:160], "status": r["status"]} for r in rows[:10]]
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "samples": facts["samples"],
            "ok": facts["ok"],
            "cost_usd": float(facts["cost_usd"]),
            "spent_usd_this_run": spent,
            **metadata,
            "preview": MetadataValue.md(pa.Table.from_pylist(preview).to_pandas().to_markdown(index=False)) if preview else "",
        },
        check_results=CHECKS.results({**facts, "chosen": len(chosen)}),
    ))
