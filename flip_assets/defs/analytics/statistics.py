"""release_statistics_partial: a shard's partial aggregates (counts, histogram bins, sums), taken
when its release is published; dataset_statistics: the numbers of paper 3.2 over every stage and
the release, merged from those partials; and dataset_card, the Markdown that ships with the
release, with its figures and tables beside it."""

import pyarrow as pa
from dagster import AssetCheckSeverity, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.analytics.dataset_card import dataset_card as build_card
from flip_assets.core.analytics.gallery import gallery_jpeg, rejection_items, released_items
from flip_assets.core.curation.keywords import used_keywords
from flip_assets.core.io.plots import image_suffix, markdown_image
from flip_assets.core.release import index
from flip_assets.core.analytics.statistics import (
    PARTIAL, STATISTICS_COLUMNS, DatasetStatistics, statistics_from_partials, statistics_partial,
)
from flip_assets.core.analytics.statistics_report import figures, tables
from flip_assets.defs.asset_keys import (
    DATASET_CARD, DATASET_STATISTICS, DENOISED_CAPTIONS, FACE_DETECTIONS, FACE_KEYWORDS, FACE_TEXT_PAIRS,
    FLIP_RELEASE, RACE_CLASSIFIER, RAW_SHARDS, RELEASED_FACE_DEMOGRAPHICS, RELEASE_EXCLUSIONS, RELEASE_INDEX,
    RELEASE_STATISTICS_PARTIAL,
)
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.shards import shard_partitions
from flip_assets.defs.storage import FlipStorage

STATISTICS_FILE, CARD_FILE, TABLES_FILE = "statistics.json", "README.md", "statistics.md"


def _none_listed(name: str, description: str, fact: str) -> Check:
    """Passes when the list `fact` of DatasetStatistics.check_facts is empty; shows the list."""
    return Check(name, description, passed=lambda f: not f[fact], metadata=lambda f: {fact: MetadataValue.json(f[fact])})


# None blocks, so that the card is always written and says what is missing.
CHECKS = AssetChecks(
    DATASET_STATISTICS,
    _none_listed(
        "funnel_monotone", "In every shard and in total, no funnel stage has more samples than the one before it.",
        "funnel_increases",
    ),  # fmt: skip
    _none_listed(
        "shares_in_unit_interval", "The NSFW, duplicate, LAION-agreement and keyword shares all lie in [0, 1].",
        "shares_out_of_range",
    ),  # fmt: skip
    _none_listed(
        "every_shard_release_present",
        "Every shard has a readable flip_release and release_exclusions file; the statistics list those they lack.",
        "release_files_missing",
    ),
    _none_listed(
        "every_shard_partial_current",
        "Every shard has a readable release_statistics_partial taken from its current files; the statistics name "
        "those missing or stale and leave them out (never counted out of date or twice).",
        "partials_missing_or_stale",
    ),
    _none_listed(
        "every_release_current",
        "No shard's published release is out of date: an earlier shard's release_index re-run since it was made "
        "reached its samples (core/release/index.py, invalidations); those named count as published until their "
        "flip_release runs again.",
        "releases_out_of_date",
    ),
    _none_listed(
        "candidates_add_up",
        "In every shard whose files are all present, released + excluded samples = its denoised captions.",
        "shards_not_adding_up",
    ),
    Check(
        "release_precision_covers_every_pair",
        "Every released pair has a verdict by looking (flip_assets/release_review.csv) for its released text; "
        "otherwise the release precision rests on the pairs that have one. Warns: new shards need new verdicts.",
        passed=lambda f: not f["released_pairs_unchecked"],
        metadata=lambda f: {"released_pairs_unchecked": MetadataValue.json(f["released_pairs_unchecked"])},
        severity=AssetCheckSeverity.WARN,
    ),
)

# The per-shard files a partial reads (STATISTICS_COLUMNS).
PARTIAL_INPUTS = [
    RAW_SHARDS, FACE_DETECTIONS, FACE_TEXT_PAIRS, DENOISED_CAPTIONS, FLIP_RELEASE, RELEASE_EXCLUSIONS,
    RELEASED_FACE_DEMOGRAPHICS,
]  # fmt: skip
assert RELEASE_STATISTICS_PARTIAL == PARTIAL and set(PARTIAL_INPUTS) == set(STATISTICS_COLUMNS)


@asset(
    partitions_def=shard_partitions, deps=[*PARTIAL_INPUTS, FACE_KEYWORDS], kinds={"duckdb", "parquet"},
    automation_condition=REFRESH_ON_CHANGE,
)  # fmt: skip
def release_statistics_partial(context: AssetExecutionContext, flip_storage: FlipStorage) -> MaterializeResult:
    """One shard's partial aggregates for dataset_statistics, taken once its release and face
    demographics are published: funnel counts, histogram bins and sums (long rows: shard,
    statistic, value, n, total, detail), the card's gallery candidates of the shard (its first
    picks and nearest rejections, which merge to the same galleries), the files it read (footer
    fingerprints) and their problems. Reads only this shard's files (and the face keywords, which
    the learning sample fixes), so a new shard costs its own rows; a re-run replaces the shard's
    partial."""
    shard = context.partition_key
    flip_storage.path(FACE_KEYWORDS)
    for stage in PARTIAL_INPUTS:
        flip_storage.path(stage, shard)  # on an object store: this shard's file, pulled
    table = statistics_partial(flip_storage.local_home(), [shard])
    flip_storage.write(RELEASE_STATISTICS_PARTIAL, shard, table)
    problems = [row for row in table.to_pylist() if row["statistic"] == "problem"]
    return flip_storage.publish(context, MaterializeResult(metadata={
        "rows": table.num_rows,
        "missing_files": MetadataValue.json([{"stage": p["value"], "problem": p["detail"]} for p in problems]),
    }))


@asset(
    deps=[RELEASE_STATISTICS_PARTIAL, RACE_CLASSIFIER], kinds={"duckdb", "parquet"}, check_specs=CHECKS.specs,
    automation_condition=REFRESH_ON_CHANGE,
)  # fmt: skip
def dataset_statistics(context: AssetExecutionContext, flip_storage: FlipStorage) -> MaterializeResult:
    """The funnel per shard and in total, caption length (paper: 85.1 characters, 15.6 words),
    keyword frequencies, faces per image, face and image size, NSFW (paper: 5.4 %) and duplicate
    shares, and the age, gender and race of the released faces (paper Figure 6), over every
    registered shard, merged from the shards' release_statistics_partial (counts, bins and sums
    added; means, shares and medians derived: cost grows with the shards and distinct values,
    not the rows). The Parquet output is the funnel; every statistic is in statistics.json
    beside it, tables and plots in the metadata. Missing or unreadable shard files are listed,
    not fatal; so is a shard whose partial is missing or stale (a stage file changed since):
    named, left out and its check fails, never counted twice or out of date."""
    shards = context.instance.get_dynamic_partitions(shard_partitions.name)
    # The stage files' footers are read to see that each partial is current.
    home = flip_storage.local_home(PARTIAL, *STATISTICS_COLUMNS, RACE_CLASSIFIER, FACE_KEYWORDS)
    stats = statistics_from_partials(home, shards)
    flip_storage.local_home(f"{RELEASE_INDEX}/{index.INVALIDATED}")
    out_of_date = [
        {"shard": shard, "problem": why}
        for shard, why in index.out_of_date_releases(home / RELEASE_INDEX, storage.partition_files(home / FLIP_RELEASE / "*.parquet"))
        if shard in shards
    ]  # fmt: skip
    flip_storage.write(DATASET_STATISTICS, None, pa.Table.from_pylist(stats.funnel))
    # Every statistic, for the card; no check of this asset blocks, so the funnel file is published beside it.
    everything = flip_storage.path(DATASET_STATISTICS).parent / STATISTICS_FILE
    storage.atomic_write_bytes(everything, lambda tmp: tmp.write_text(stats.to_json()))
    if out_of_date:
        context.log.warning(f"releases out of date: {out_of_date}")
    if stats.problems:
        context.log.warning(f"statistics without {len(stats.problems)} shard file(s): {stats.problems}")
    markdown = tables(stats)
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "shards": len(stats.shards),
            "released": stats.captions["captions"],
            "mean_caption_chars": stats.captions["mean_chars"],
            "mean_caption_words": stats.captions["mean_words"],
            "nsfw_share": stats.safety["nsfw_share"],
            "duplicate_share": stats.safety["duplicate_share"],
            "race_test_accuracy": stats.race_test_accuracy,
            "missing_files": MetadataValue.md(markdown["problems"]),
            **{f"table_{name}": MetadataValue.md(text) for name, text in markdown.items() if name != "problems"},
            **{f"plot_{name}": MetadataValue.md(markdown_image(png, name)) for name, png in figures(stats).items()},
        },
        check_results=CHECKS.results({**stats.check_facts(), "releases_out_of_date": out_of_date}),
    ))


@asset(
    # The galleries' rows come with the statistics (merged from the partials); their images from the raw tars.
    deps=[DATASET_STATISTICS, FACE_KEYWORDS], kinds={"markdown"},
    automation_condition=REFRESH_ON_CHANGE,
)  # fmt: skip
def dataset_card(context: AssetExecutionContext, flip_storage: FlipStorage) -> MaterializeResult:
    """The dataset card (README.md) with its plots (PNG) and statistics tables (statistics.md)
    beside it in $FLIP_HOME/dataset_card/: counts, funnel, fields, licence, safety, keywords, how
    to download the images, known limitations. The UI shows it with the plots inline."""
    flip_storage.local_home(DATASET_STATISTICS)  # statistics.json comes with the funnel file
    statistics_path = storage.require_file(flip_storage.path(DATASET_STATISTICS))
    stats = DatasetStatistics.from_json((statistics_path.parent / STATISTICS_FILE).read_text())
    keywords = used_keywords(flip_storage.path(FACE_KEYWORDS))
    released, rejected = stats.galleries.get("released", []), stats.galleries.get("rejections", [])
    galleries = {
        "gallery_released": gallery_jpeg(released_items(released), f"Released samples ({len(released)} by a hash of the key)"),
        "gallery_rejections": gallery_jpeg(rejection_items(rejected), "Informative rejections, nearest the line first"),
    }
    folder = flip_storage.directory(DATASET_CARD)
    pngs = figures(stats)
    files = {name: f"{name}{image_suffix(image)}" for name, image in {**pngs, **galleries}.items()}
    for name, image in {**pngs, **galleries}.items():
        storage.atomic_write_bytes(folder / files[name], lambda tmp, image=image: tmp.write_bytes(image))
    all_tables = "\n\n".join(f"## {name}\n\n{text}" for name, text in tables(stats).items())
    storage.atomic_write_bytes(folder / TABLES_FILE, lambda tmp: tmp.write_text(all_tables))

    def as_files(images: dict[str, bytes]) -> dict[str, str]:
        return {name: f"![{name}]({files[name]})" for name in images}

    def inline(images: dict[str, bytes]) -> dict[str, str]:
        return {name: markdown_image(png, name) for name, png in images.items()}

    card = build_card(stats, keywords, as_files(pngs), as_files(galleries))
    card_path = storage.atomic_write_bytes(folder / CARD_FILE, lambda tmp: tmp.write_text(card))
    shown = build_card(stats, keywords, inline(pngs), inline(galleries))
    flip_storage.share(folder)
    context.log.info(f"dataset card written to {card_path}")
    return MaterializeResult(
        metadata={
            "card": MetadataValue.md(shown),
            "path": MetadataValue.path(str(card_path)),
            # Dagster's UI has no image entry, and shows Markdown over 1000 characters (any plot
            # inline) only behind [Show Markdown]: the figures' files, to open without it.
            **{f"figure_{name}": MetadataValue.path(str(folder / file)) for name, file in files.items()},
            "complete": not stats.problems,
            "keywords": len(keywords),
            **{name: MetadataValue.md(image) for name, image in inline(galleries).items()},
        }
    )
