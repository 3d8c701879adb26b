"""Training pairs: CelebA faces captioned from their attributes, the released face-text pairs,
and the unfiltered pairs of the raw shards (the ablation's "no curation" source). One table
each, images inside."""


from pathlib import Path

import pyarrow as pa
from dagster import AllPartitionMapping, AssetDep, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.io.shards import read_sample_image
from flip_assets.core.training.training_pairs import SEEN_ATTRIBUTES, UNSEEN_ATTRIBUTES, celeba_pairs, shard_pairs, unseen_attribute_facts
from flip_assets.defs.asset_keys import (
    AIGC_SAMPLES, CELEBA_CAPTION_PAIRS, FLIP_RELEASE, FLIP_RELEASE_AIGC, RAW_SHARDS, RAW_SHARD_PAIRS, RELEASED_PAIRS,
)
from flip_assets.defs.automation import REFRESH_ON_CHANGE, REFRESH_ON_CODE_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.storage import FlipStorage
from flip_assets.defs.shared_resources import TrainingResource

# No template may caption more than this share: the model must not key on one form.
MAX_TEMPLATE_SHARE = 0.5


def pair_checks(asset: str, *extra: Check) -> AssetChecks:
    """Judged from training_pairs_checks.sql."""
    return AssetChecks(
        asset,
        Check(
            "no_evaluation_image", "No image (SHA-256 of the source bytes or of the stored image) is in an evaluation "
            "file (CelebA's test split, FER2013, UTKFace, 300-W): training never sees a test image.",
            blocking=True, zero=("images_in_evaluation",), report=("pairs",),
        ),  # fmt: skip
        Check("captions_present", "Every pair has a caption.", blocking=True, zero=("empty_captions",)),
        *extra,
    )


CELEBA_CHECKS = pair_checks(
    CELEBA_CAPTION_PAIRS,
    Check(
        "captions_varied",
        f"At least 3 caption templates, none writing more than {MAX_TEMPLATE_SHARE:.0%} of the captions, and no image twice.",
        zero=("duplicate_images",), report=("templates", "distinct_caption_share"),
        passed=lambda f: f["templates"] >= 3 and f["largest_template_share"] <= MAX_TEMPLATE_SHARE,
        metadata=lambda f: {"largest_template_share": float(f["largest_template_share"])},
    ),  # fmt: skip
    Check(
        "no_unseen_attribute_named",
        f"No caption names an attribute kept for zero-shot ({', '.join(UNSEEN_ATTRIBUTES)}) in any of its wordings "
        "(phrase or synonym, as a whole phrase, any case): zero-shot on them is transfer, not the labels read back.",
        blocking=True, zero=("captions_naming_unseen_attributes",),
        metadata=lambda f: {"unseen_attributes_named": MetadataValue.json(f["unseen_attributes_named"])},
    ),  # fmt: skip
)
RAW_CHECKS = pair_checks(RAW_SHARD_PAIRS)


def _write_and_check(
    context: AssetExecutionContext, flip_storage: FlipStorage, training: TrainingResource, asset: str,
    table: pa.Table, checks: AssetChecks, metadata: dict, extra_facts: dict | None = None,
) -> MaterializeResult:  # fmt: skip
    path = flip_storage.write(asset, None, table.sort_by("sample_id"))
    facts = storage.query(
        storage.sql_file("training_pairs_checks.sql"), path=str(path), eval_glob=str(Path(training.eval_data) / "*.parquet")
    )[0] | (extra_facts or {})
    examples = table.select(["sample_id", "template", "caption"]).slice(0, 10).to_pandas().to_markdown(index=False)
    return flip_storage.publish(context, MaterializeResult(
        metadata={"pairs": table.num_rows, "examples": MetadataValue.md(examples), **metadata},
        check_results=checks.results(facts),
    ))  # fmt: skip


@asset(
    kinds={"parquet"}, check_specs=CELEBA_CHECKS.specs, code_version="2",
    automation_condition=REFRESH_ON_CODE_CHANGE,
)
def celeba_caption_pairs(context: AssetExecutionContext, flip_storage: FlipStorage, training: TrainingResource) -> MaterializeResult:
    """CelebA's train-split faces (ids 1-8000 of the shared file; it has no identity labels, so
    its id split is the split) with one caption each, generated from its attributes in varied
    forms and wording, as MM-CelebA-HQ did, naming only the seen half of the 40 attributes
    (training_pairs.SEEN_ATTRIBUTES): the other half is flip_eval_tables' real zero-shot."""
    table = celeba_pairs(Path(training.eval_data) / "celeba_attr.parquet", training.seed, training.celeba_samples)
    counts = table.group_by("template").aggregate([("template", "count")]).to_pylist()
    return _write_and_check(
        context, flip_storage, training, CELEBA_CAPTION_PAIRS, table, CELEBA_CHECKS,
        {"templates": MetadataValue.json({r["template"]: r["template_count"] for r in counts}), "attributes_named": ", ".join(SEEN_ATTRIBUTES)},
        unseen_attribute_facts(table.column("caption").to_pylist()),
    )  # fmt: skip


@asset(
    deps=[RAW_SHARDS], kinds={"parquet"}, check_specs=RAW_CHECKS.specs, code_version="1",
    automation_condition=REFRESH_ON_CHANGE,
)
def raw_shard_pairs(context: AssetExecutionContext, flip_storage: FlipStorage, training: TrainingResource) -> MaterializeResult:
    """Every downloaded sample of every shard as a pair, unfiltered (no face or text filter, raw
    caption): the ablation's uncurated source. Images cut to 224 px once; a sample without a
    caption or a readable image is dropped, counted per reason."""
    folder = flip_storage.path(RAW_SHARDS, "*").parent
    if not any(folder.glob("*.parquet")):
        raise FileNotFoundError(f"no raw_shards partitions in {folder}: materialize raw_shards first")
    rows = storage.query(storage.sql_file("raw_shard_pairs_input.sql"), glob=str(folder / "*.parquet"))
    table, dropped = shard_pairs(rows, RAW_SHARDS, read_sample_image)
    return _write_and_check(
        context, flip_storage, training, RAW_SHARD_PAIRS, table, RAW_CHECKS,
        {"downloaded_samples": len(rows), "dropped": MetadataValue.json(dropped)},
    )  # fmt: skip


RELEASED_CHECKS = pair_checks(RELEASED_PAIRS)


@asset(
    deps=[AssetDep(FLIP_RELEASE, partition_mapping=AllPartitionMapping()), FLIP_RELEASE_AIGC, RAW_SHARDS],
    kinds={"parquet"}, check_specs=RELEASED_CHECKS.specs, code_version="1",
    automation_condition=REFRESH_ON_CHANGE,
)  # fmt: skip
def released_pairs(context: AssetExecutionContext, flip_storage: FlipStorage, training: TrainingResource) -> MaterializeResult:
    """The released face-text pairs of every shard (flip_release: images cut from the shards at
    224 px, captions from TEXT) and the AIGC release's generated images with their captions. A
    released sample whose image no longer reads (not in raw_shards, tar changed) is dropped,
    counted per reason."""
    folder = flip_storage.path(FLIP_RELEASE, "*").parent
    if not any(folder.glob("*.parquet")):
        raise FileNotFoundError(f"no flip_release partitions in {folder}: materialize flip_release first")
    rows = storage.query(
        storage.sql_file("released_pairs_input.sql"), release=str(folder / "*.parquet"), raw=str(flip_storage.path(RAW_SHARDS, "*"))
    )
    table, dropped = shard_pairs(rows, "released", read_sample_image)
    aigc_path = flip_storage.path(FLIP_RELEASE_AIGC)
    aigc = storage.read_table(aigc_path).to_pylist() if aigc_path.is_file() else []
    generated, aigc_dropped = shard_pairs(
        [{"key": r["key"], "caption": r["TEXT"], "image": r["image"], "image_sha256": r["generated_sha256"]} for r in aigc],
        "released_aigc", lambda r: r["image"],
    )  # fmt: skip
    return _write_and_check(
        context, flip_storage, training, RELEASED_PAIRS, pa.concat_tables([table, generated]), RELEASED_CHECKS,
        {"released_samples": len(rows), AIGC_SAMPLES: len(aigc), "dropped": MetadataValue.json(dropped | {f"aigc_{k}": v for k, v in aigc_dropped.items()})},
    )  # fmt: skip
