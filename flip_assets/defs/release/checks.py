"""The release's checks, declared once (defs/checks.py), and its Great Expectations suite."""

from dagster import AssetCheckSeverity, MetadataValue

from flip_assets.core.release.nsfw import LABELS
from flip_assets.core.release.release import RELEASE_SCHEMA
from flip_assets.defs.asset_keys import (
    FLIP_RELEASE, FLIP_RELEASE_AIGC, RELEASE_CANDIDATES, RELEASE_EXCLUSIONS, RELEASE_INDEX,
)
from flip_assets.defs.checks import AssetChecks, Check, expectations_pass


def release_suite(min_text_chars: int, max_text_chars: int) -> list:
    """What a user of the release relies on (issue #10 item 6)."""
    import great_expectations as gx  # here, not at the top: loading the definitions stays cheap

    return [
        gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=RELEASE_SCHEMA.names),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="key"),
        gx.expectations.ExpectColumnValuesToBeUnique(column="key"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="URL"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="TEXT"),
        gx.expectations.ExpectColumnValueLengthsToBeBetween(column="TEXT", min_value=min_text_chars, max_value=max_text_chars),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="HEIGHT"),
        gx.expectations.ExpectColumnValuesToBeBetween(column="HEIGHT", min_value=1),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="WIDTH"),
        gx.expectations.ExpectColumnValuesToBeBetween(column="WIDTH", min_value=1),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="NSFW"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="NSFW", value_set=list(LABELS)),
    ]


def _schema_metadata(facts) -> dict:
    return {"differences": MetadataValue.json(facts["schema_differences"])}


def schema_check(schema_name: str) -> Check:
    return Check(
        "schema_exact",
        f"The file's Arrow schema is {schema_name} exactly: names, order and types (what users and the statistics read).",
        blocking=True, passed=lambda f: not f["schema_differences"], metadata=_schema_metadata,
    )  # fmt: skip


RELEASE_CANDIDATES_CHECKS = AssetChecks(
    RELEASE_CANDIDATES,
    Check(
        "every_denoised_pair_a_candidate",
        "Every pair the denoiser gave a caption has one candidate row, and no other key.",
        blocking=True, zero=("missing_candidates", "not_denoised", "duplicate_keys"), report=("candidates",),
    ),  # fmt: skip
    Check(
        "every_readable_image_scored",
        "Every candidate whose image was read has its SHA-256, perceptual hash and an NSFW score in [0, 1].",
        blocking=True, zero=("unscored",),
    ),  # fmt: skip
)

RELEASE_INDEX_CHECKS = AssetChecks(
    RELEASE_INDEX,
    Check(
        "keys_unique_across_shards",
        "No sample key is a candidate in two shards (keys are how users and the release files join samples).",
        blocking=True, zero=("keys_in_several_shards", "duplicate_entries"),
        metadata=lambda f: {"keys": MetadataValue.json(f["keys_in_several_shards_list"][:100])},
    ),  # fmt: skip
    Check(
        "later_releases_current",
        "No later shard's published release depends on what this run changed (an entry, before or after, linked to "
        "one of its entries by the same bytes or a close hash): those named are out of date until their flip_release "
        "runs again, and dataset_statistics names them meanwhile. Warns: the shards are run again, not refused.",
        passed=lambda f: not f["later_releases_out_of_date"],
        metadata=lambda f: {"later_releases_out_of_date": MetadataValue.json(f["later_releases_out_of_date"])},
        severity=AssetCheckSeverity.WARN,
    ),
)

FLIP_RELEASE_CHECKS = AssetChecks(
    FLIP_RELEASE,
    schema_check("RELEASE_SCHEMA"),
    expectations_pass(
        "release_expectations",
        "Great Expectations on the release: columns in order, key set and unique, URL and TEXT set, TEXT length "
        "within bounds, HEIGHT and WIDTH at least 1, NSFW one of UNLIKELY, UNSURE, NSFW.",
    ),
    Check(
        "every_candidate_accounted_for",
        "Every candidate of the shard is released or excluded, once, and nothing else is; this shard's rows only.",
        blocking=True, zero=("unaccounted", "not_candidates", "in_both_or_twice", "wrong_shard"),
        report=("candidates", "released", "excluded"),
    ),  # fmt: skip
    Check(
        "no_duplicate_released", "No image (SHA-256) is released twice in the shard.",
        blocking=True, zero=("released_sha256_twice",),
    ),  # fmt: skip
    Check(
        "blocklist_entries_match",
        "Every blocklist entry lists a candidate of some published shard (the blocklist is global, so all shards "
        "are searched, URLs compared as canonical URLs): one that lists none removes nothing, a typo or a sample "
        "not in the data. A warning: it never blocks.",
        zero=("blocklist_unmatched",), severity=AssetCheckSeverity.WARN,
        metadata=lambda f: {"examples": MetadataValue.json(f["blocklist_unmatched_examples"])},
    ),  # fmt: skip
)

RELEASE_EXCLUSIONS_CHECKS = AssetChecks(
    RELEASE_EXCLUSIONS,
    Check(
        "reasons_known",
        "Every exclusion has a known reason; duplicates, and only they, name the kept first occurrence.",
        blocking=True, zero=("unknown_reasons", "duplicate_without_original"),
    ),  # fmt: skip
)

FLIP_RELEASE_AIGC_CHECKS = AssetChecks(
    FLIP_RELEASE_AIGC,
    schema_check("AIGC_RELEASE_SCHEMA"),
    Check(
        "from_released_samples",
        "Every AIGC sample is released only when its source sample is in flip_release, once, with its image.",
        blocking=True, zero=("without_source", "duplicate_keys", "without_image"),
    ),  # fmt: skip
)
