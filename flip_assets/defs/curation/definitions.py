"""The curation domain: the paper's stages in order, their job and sensor (resources: resources.py)."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.curation import s01_raw_shards, s02_face_detections
from flip_assets.defs.curation import s03_face_keywords, s04_caption_classifier, s05_face_text_pairs
from flip_assets.defs.curation import s06_denoised_captions, s07_aigc_samples
from flip_assets.defs.curation.jobs import shard_pipeline_job
from flip_assets.defs.curation.sensors import new_shards_sensor

STAGES = [s01_raw_shards, s02_face_detections, s03_face_keywords, s04_caption_classifier, s05_face_text_pairs, s06_denoised_captions, s07_aigc_samples]

# The UI group of every asset of the domain: the folder's name (flip_assets/defs/curation/).
GROUP = "curation"

defs = Definitions(
    assets=load_assets_from_modules(STAGES, group_name=GROUP),
    asset_checks=load_asset_checks_from_modules(STAGES),
    jobs=[shard_pipeline_job],
    sensors=[new_shards_sensor],
)
