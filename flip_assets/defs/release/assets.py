"""The release (paper 3.2): release_candidates -> release_index -> flip_release and
release_exclusions, each per shard; flip_release_aigc for the AIGC subset.

Why an index: deduplication keeps the first occurrence in one global order (shard, then key),
so a shard's release depends on every shard before it. release_index keeps each shard's entries
(core/release/index.py), from its candidates file only; flip_release decides its shard's
verdicts from the entries of the shards up to it, so they do not depend on the order in which
shards ran, and refuses an index older than those shards' candidates (a shard added or re-run
since), naming the shards, instead of releasing duplicates.
"""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from flip_assets.core.analytics.gallery import gallery_jpeg, released_items, shard_gallery_rows
from flip_assets.core.io import expectations, storage
from flip_assets.core.io.plots import markdown_image
from flip_assets.core.release import index
from flip_assets.core.release.dedup import DUPLICATE_SHA256, KEPT, NEAR_DUPLICATE, Verdict
from flip_assets.core.curation.keywords import KeywordMatcher, used_keywords
from flip_assets.core.release.nsfw import CLASSIFIER_NAME
from flip_assets.core.release.release import (
    AIGC_RELEASE_SCHEMA,
    EXCLUSION_REASONS,
    RELEASE_SCHEMA,
    STAGE_COLUMNS,
    build_aigc_release,
    build_candidates,
    require_columns,
    schema_differences,
    source_nsfw_tags,
    split_release,
    unmatched_blocklist_entries,
)
from flip_assets.defs.asset_keys import (
    AIGC_SAMPLES, DENOISED_CAPTIONS, FACE_DETECTIONS, FACE_KEYWORDS, FACE_TEXT_PAIRS, FLIP_RELEASE,
    FLIP_RELEASE_AIGC, RAW_SHARDS, RELEASE_CANDIDATES, RELEASE_EXCLUSIONS, RELEASE_INDEX,
)
from flip_assets.defs.shards import SHARD_TAG, shard_partitions
from flip_assets.defs.shards import ShardSource
from flip_assets.defs.release.checks import (
    FLIP_RELEASE_AIGC_CHECKS,
    FLIP_RELEASE_CHECKS,
    RELEASE_CANDIDATES_CHECKS,
    RELEASE_EXCLUSIONS_CHECKS,
    RELEASE_INDEX_CHECKS,
    release_suite,
)
from flip_assets.defs.release.resources import ReleaseResource
from flip_assets.defs.storage import FlipStorage, column_schema

PREVIEW = ["key", "TEXT", "NSFW", "nsfw_score", "face_count", "KEYWORDS"]
BLOCKLIST_EXAMPLES = 20


def _markdown(table: pa.Table) -> MetadataValue:
    return MetadataValue.md(table.to_pandas().to_markdown(index=False) if table.num_rows else "(none)")


@asset(
    partitions_def=shard_partitions,
    tags=SHARD_TAG,
    deps=[DENOISED_CAPTIONS, FACE_TEXT_PAIRS, FACE_DETECTIONS, RAW_SHARDS, FACE_KEYWORDS],
    kinds={"onnx", "parquet"},
    check_specs=RELEASE_CANDIDATES_CHECKS.specs,
    code_version="1",
)
def release_candidates(
    context: AssetExecutionContext, flip_storage: FlipStorage, shard_source: ShardSource, release: ReleaseResource
) -> MaterializeResult:
    """Every face-text pair of the shard with a denoised caption, with the release fields of
    every stage, the NSFW score of its image (NudeNet), its perceptual hash, and the source's
    own NSFW tag where the shard's metadata has one: the per-image work of the release, done once."""
    shard = context.partition_key
    paths = {name: flip_storage.path(name, shard) for name in STAGE_COLUMNS}
    for name, path in paths.items():
        require_columns(storage.require_file(path), STAGE_COLUMNS[name])
    rows = storage.query(
        storage.sql_file("release_candidates_input.sql"),
        denoised=str(paths[DENOISED_CAPTIONS]), pairs=str(paths[FACE_TEXT_PAIRS]),
        detections=str(paths[FACE_DETECTIONS]), raw=str(paths[RAW_SHARDS]),
    )  # fmt: skip
    tags = source_nsfw_tags(shard_source.path / f"{shard}.parquet")

    def progress(done: int, total: int) -> None:
        context.log.info(f"release_candidates {shard}: {done}/{total} images scored")

    table = build_candidates(
        rows, shard, KeywordMatcher(used_keywords(flip_storage.path(FACE_KEYWORDS))), tags,
        release.classifier(), release.max_pixels, progress=progress,
    )  # fmt: skip
    path = flip_storage.write(RELEASE_CANDIDATES, shard, table)
    facts = storage.query(
        storage.sql_file("release_candidates_checks.sql"), path=str(path), denoised=str(paths[DENOISED_CAPTIONS])
    )[0]
    problems = pc.value_counts(table["image_problem"].drop_null()).to_pylist() if table.num_rows else []
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "candidates": facts["candidates"],
            "with_source_nsfw_tag": facts["with_source_nsfw_tag"],
            "image_problems": MetadataValue.json({p["values"]: p["counts"] for p in problems}),
            "nsfw_classifier": CLASSIFIER_NAME,
            "max_nsfw_score": float(facts["max_nsfw_score"]),
        },
        check_results=RELEASE_CANDIDATES_CHECKS.results(facts),
    ))


@asset(
    partitions_def=shard_partitions,
    tags=SHARD_TAG,
    deps=[RELEASE_CANDIDATES],
    kinds={"parquet"},
    check_specs=RELEASE_INDEX_CHECKS.specs,
    code_version="2",
)
def release_index(context: AssetExecutionContext, flip_storage: FlipStorage, release: ReleaseResource) -> MaterializeResult:
    """The shard's entries in the dedup index (core/release/index.py: key, SHA-256 and perceptual
    hash of each published candidate), looked up against every other shard's: its keys must be
    its own, and its verdicts so far (exact and near duplicates, FLIP_NEAR_DUPLICATE_BITS) are
    shown. Work in proportion to the shard: no other shard's file is rewritten."""
    shard = context.partition_key
    candidates = storage.require_file(flip_storage.path(RELEASE_CANDIDATES, shard))
    table = index.entries(candidates)
    folder = flip_storage.path(RELEASE_INDEX, "*").parent
    before = flip_storage.path(RELEASE_INDEX, shard)  # the shard's entries until now, if indexed
    before = storage.read_table(before) if before.is_file() and index.recorded_stamp(before) else table.slice(0, 0)
    path = flip_storage.write(RELEASE_INDEX, shard, table)
    others = storage.partition_files(flip_storage.path(RELEASE_INDEX, "*"))
    files = [f for s, f in others.items() if s != shard] + [path]
    facts = storage.query(storage.sql_file("release_index_checks.sql"), path=str(path), index=[str(f) for f in files], shard=shard)[0]
    verdicts = index.shard_verdicts(table, [f for s, f in others.items() if s < shard] + [path], release.near_duplicate_bits)
    changed = pa.concat_tables([before, table]) if before.num_rows else table
    reached = index.later_shards_reached(changed, [f for s, f in others.items() if s > shard], release.near_duplicate_bits)
    released = storage.partition_files(flip_storage.path(FLIP_RELEASE, "*"))
    facts["later_releases_out_of_date"] = [s for s in reached if s in released]
    statuses = [v.status for v in verdicts.values()]
    dups = [{"key": k, **vars(v)} for k, v in sorted(verdicts.items()) if v.status != KEPT]
    result = flip_storage.publish(context, MaterializeResult(
        metadata={
            "candidates": facts["candidates"],
            "shards_indexed": len(set(others) | {shard}),
            **{status: statuses.count(status) for status in (KEPT, DUPLICATE_SHA256, NEAR_DUPLICATE)},
            "cross_shard_duplicates": sum(d["duplicate_of_shard"] != shard for d in dups),
            "near_duplicate_bits": release.near_duplicate_bits,
            "duplicates": _markdown(pa.Table.from_pylist(dups[:10])),
            "later_shards_reached": MetadataValue.json(reached),
        },
        check_results=RELEASE_INDEX_CHECKS.results(facts),
    ))
    if result.metadata["published"]:  # after the new entries are in place: a release seeing a marker reads them
        for marker in index.mark_invalidated(folder, reached, shard, context.run.run_id):
            flip_storage.share(marker.parent)
    return result


def _verdicts(flip_storage: FlipStorage, shard: str, max_distance: int) -> dict[str, Verdict]:
    """This shard's dedup verdicts from the index, once every shard up to it (those its verdicts
    depend on) is indexed from its current candidates."""
    candidates = flip_storage.path(RELEASE_CANDIDATES, "*")
    indexed = storage.partition_files(flip_storage.path(RELEASE_INDEX, "*"))
    current = storage.partition_files(candidates)
    for s in sorted(set(current) - set(indexed)):
        if s <= shard and storage.rejection_note(flip_storage.path(RELEASE_INDEX, s)).is_file():
            storage.require_file(flip_storage.path(RELEASE_INDEX, s))  # says which check refused it
    stale = index.stale_shards(current, indexed, shard)
    if stale:
        raise Failure(
            description="release_index is older than the candidates of shard(s) "
            + ", ".join(f"{s} ({why})" for s, why in stale)
            + ": materialize release_index for those shards, then flip_release, so duplicates are decided over "
            "every shard up to this one",
            metadata={"stale_shards": MetadataValue.json([s for s, _ in stale])},
        )
    files = [f for s, f in indexed.items() if s <= shard]
    return index.shard_verdicts(storage.read_table(indexed[shard]), files, max_distance)


def seen_invalidations(flip_storage: FlipStorage, shard: str) -> list[str]:
    """The markers left for the shard's release so far (core/release/index.py), read before its
    verdicts are: the release records them, and one left later says it is out of date."""
    flip_storage.local_home(f"{RELEASE_INDEX}/{index.INVALIDATED}/{shard}")
    return index.invalidations(flip_storage.path(RELEASE_INDEX, "*").parent, shard)


# Not tagged SHARD_TAG, so not in shard_pipeline (the per-shard job a new shard runs): a shard's
# release needs the index of every shard up to it, which a backfill's runs may still be writing.
@multi_asset(
    specs=[
        AssetSpec(
            # 2: blocklist URLs compared as the same resource, not as exact strings.
            # raw_shards: where the gallery's images lie.
            FLIP_RELEASE, deps=[RELEASE_CANDIDATES, RELEASE_INDEX, RAW_SHARDS], kinds={"parquet"}, code_version="2",
            description="The released samples of the shard, one row each, under LAION's field names (schema: "
            "core/release/release.py RELEASE_SCHEMA): caption, keywords, size, NSFW tag, image hash, faces, scores.",
            # The columns and their descriptions, shown before the first materialization too.
            metadata={"dagster/column_schema": column_schema(RELEASE_SCHEMA)},
        ),
        AssetSpec(
            RELEASE_EXCLUSIONS, deps=[RELEASE_CANDIDATES, RELEASE_INDEX], kinds={"parquet"}, code_version="2",
            description="Every candidate of the shard not released, with its reason (missing_upstream, image_unreadable, "
            "blocklisted, duplicate_sha256, near_duplicate, nsfw) and, for a duplicate, the kept first occurrence.",
        ),
    ],
    partitions_def=shard_partitions,
    check_specs=FLIP_RELEASE_CHECKS.specs + RELEASE_EXCLUSIONS_CHECKS.specs,
)
def flip_release(context: AssetExecutionContext, flip_storage: FlipStorage, release: ReleaseResource):
    """Split the shard's candidates into the release and the exclusions: dedup verdicts from
    release_index, then the blocklist (read now: a listed sample leaves at this
    materialization) and the NSFW thresholds and action. The two files are published together
    or not at all."""
    shard = context.partition_key
    policy = release.policy()  # a bad blocklist fails here, before any work
    candidates_path = flip_storage.path(RELEASE_CANDIDATES, shard)
    candidates = storage.read_table(candidates_path).to_pylist()
    seen = seen_invalidations(flip_storage, shard)
    released, excluded = split_release(candidates, _verdicts(flip_storage, shard, release.near_duplicate_bits), policy)
    released = released.replace_schema_metadata({**(released.schema.metadata or {}), **index.seen_metadata(seen)})
    listed_here = policy.blocklist.matched((c["URL"], c["sha256"], c["source_sha256"]) for c in candidates)
    unmatched = unmatched_blocklist_entries(policy.blocklist, str(flip_storage.path(RELEASE_CANDIDATES, "*")))
    path = flip_storage.write(FLIP_RELEASE, shard, released)
    exclusions_path = flip_storage.write(RELEASE_EXCLUSIONS, shard, excluded)
    facts = storage.query(
        storage.sql_file("flip_release_checks.sql"),
        path=str(path), exclusions=str(exclusions_path), candidates=str(candidates_path), shard=shard,
        reasons=list(EXCLUSION_REASONS),
    )[0]  # fmt: skip
    suite = expectations.validate(
        storage.read_table(path).to_pandas(), FLIP_RELEASE, release_suite(*policy.text_chars)
    )
    release_checks = FLIP_RELEASE_CHECKS.results(
        {**facts, "suite": suite, "schema_differences": schema_differences(path, RELEASE_SCHEMA),
         "blocklist_unmatched": len(unmatched), "blocklist_unmatched_examples": unmatched[:BLOCKLIST_EXAMPLES]}
    )
    exclusion_checks = RELEASE_EXCLUSIONS_CHECKS.results(facts)
    reasons = storage.query(storage.sql_file("release_exclusion_reasons.sql"), path=str(exclusions_path))
    nsfw = pc.value_counts(released["NSFW"]).to_pylist() if released.num_rows else []
    yield from flip_storage.publish_together(context, [
        MaterializeResult(
            asset_key=FLIP_RELEASE,
            metadata={
                "candidates": facts["candidates"],
                "released": facts["released"],
                "released_share": facts["released"] / facts["candidates"] if facts["candidates"] else 0.0,
                "nsfw_labels": MetadataValue.json({v["values"]: v["counts"] for v in nsfw}),
                "nsfw_action": policy.nsfw_action,
                "nsfw_threshold": policy.thresholds.nsfw,
                "with_laion_tag": facts["with_laion_tag"],
                "blocklist_entries": len(policy.blocklist),
                "blocklist_matched": len(listed_here),  # entries listing a candidate of this shard
                "blocklist_unmatched": len(unmatched),  # entries listing no candidate of any shard
                "blocklist_unmatched_examples": MetadataValue.json(unmatched[:BLOCKLIST_EXAMPLES]),
                "preview": _markdown(released.select(PREVIEW).slice(0, 5)),
                "gallery": MetadataValue.md(markdown_image(gallery_jpeg(
                    released_items(shard_gallery_rows(path, flip_storage.path(RAW_SHARDS, shard), shard)),
                    f"Released samples of shard {shard}",
                ), "gallery")),  # fmt: skip
            },
            check_results=release_checks,
        ),
        MaterializeResult(
            asset_key=RELEASE_EXCLUSIONS,
            metadata={
                "excluded": facts["excluded"],
                "reasons": MetadataValue.json({r["reason"]: r["samples"] for r in reasons}),
                "examples": _markdown(excluded.slice(0, 10)),
            },
            check_results=exclusion_checks,
        ),
    ])


NO_AIGC = "no AIGC samples with an image (aigc_samples has no backend configured, or none succeeded)"


@asset(
    deps=[AIGC_SAMPLES, AssetDep(FLIP_RELEASE, partition_mapping=AllPartitionMapping()), FACE_KEYWORDS],
    kinds={"onnx", "parquet"},
    check_specs=FLIP_RELEASE_AIGC_CHECKS.specs,
    code_version="1",
)
def flip_release_aigc(context: AssetExecutionContext, flip_storage: FlipStorage, release: ReleaseResource) -> MaterializeResult:
    """The AIGC subset: every generated image (status ok) whose source sample is released, with
    its recaption, NSFW tag (same classifier, thresholds and action), hashes and models."""
    policy = release.policy()
    samples = [s for s in storage.read_table(flip_storage.path(AIGC_SAMPLES)).to_pylist() if s["status"] == "ok"]
    released = flip_storage.path(FLIP_RELEASE, "*")
    release_files = sorted(released.parent.glob(released.name))
    sources = {}
    if samples and release_files:
        keys = [s["source_key"] for s in samples]
        sources = {
            r["key"]: r for r in storage.query(
                storage.sql_file("flip_release_aigc_sources.sql"), files=[str(f) for f in release_files], keys=keys
            )
        }  # fmt: skip
    matcher = KeywordMatcher(used_keywords(flip_storage.path(FACE_KEYWORDS)))
    table, left_out = build_aigc_release(samples, sources, matcher, release.classifier(), policy, release.max_pixels)
    path = flip_storage.write(FLIP_RELEASE_AIGC, None, table)
    if release_files:
        facts = storage.query(
            storage.sql_file("flip_release_aigc_checks.sql"), path=str(path), release=[str(f) for f in release_files]
        )[0]
    else:  # nothing is released, so no AIGC sample may be
        facts = {"without_source": table.num_rows, "duplicate_keys": 0, "without_image": 0}
    facts["schema_differences"] = schema_differences(path, AIGC_RELEASE_SCHEMA)
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "samples": table.num_rows,
            "generated_ok": len(samples),
            "left_out": MetadataValue.json(left_out),
            **({"note": NO_AIGC} if not samples else {}),
            "preview": _markdown(table.select(["key", "TEXT", "NSFW", "recaption_model", "image_model"]).slice(0, 5)),
        },
        check_results=FLIP_RELEASE_AIGC_CHECKS.results(facts),
    ))
