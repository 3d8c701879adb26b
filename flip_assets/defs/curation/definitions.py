"""The one Definitions object: stages in paper order, their resources, job and sensor."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets import s01_raw_shards, s02_face_detections
from flip_assets import s03_face_keywords, s04_caption_classifier, s05_face_text_pairs
from flip_assets import s06_denoised_captions, s07_aigc_samples
from flip_assets.jobs import shard_pipeline_job
from flip_assets.resources import build_resources
from flip_assets.sensors import new_shards_sensor

STAGES = [s01_raw_shards, s02_face_detections, s03_face_keywords, s04_caption_classifier, s05_face_text_pairs, s06_denoised_captions, s07_aigc_samples]

defs = Definitions(
    assets=load_assets_from_modules(STAGES),
    asset_checks=load_asset_checks_from_modules(STAGES),
    jobs=[shard_pipeline_job],
    sensors=[new_shards_sensor],
    resources=build_resources(),
)
