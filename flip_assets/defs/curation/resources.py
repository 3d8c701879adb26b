"""The resources of the curation stages. Each lists its environment variables in ENV (the rule
is in ../settings.py); the defaults are the fields' own, most taken from the core settings
dataclasses, and the README's settings table lists them all (test_settings.py checks it)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Optional

from pydantic import PrivateAttr

from flip_assets.core.curation.caption_classifier import TrainingSettings, chosen_threshold
from flip_assets.core.curation.caption_training import WebDatasetSettings
from flip_assets.core.curation.denoiser import DenoiseSettings
from flip_assets.core.curation.detectors import BACKENDS, DETECTOR_THREADS, FaceDetector, build_detector
from flip_assets.core.io.devices import SETTING as DEVICE_SETTING
from flip_assets.core.io.devices import torch_device
from flip_assets.core.io.images import MAX_PIXELS
from flip_assets.core.curation.keywords import Word2VecSettings
from flip_assets.core.curation.llm_client import Budget, LLMClient, ResponseCache, RetryPolicy, check_endpoint
from flip_assets.core.curation.llm_server import LOCAL_IDLE_S, MODEL_ALIAS, SharedLLMServer
from flip_assets.core.io.object_store import is_url
from flip_assets.defs.settings import EnvSettings, prefixed
from flip_assets.defs.storage import FlipStorage


class FaceDetectorResource(EnvSettings):
    """The face detector and the thresholds of the visual filter."""

    ENV = {
        "backend": "FLIP_DETECTOR", "models_dir": "FLIP_MODELS", "keep_threshold": "FLIP_FACE_THRESHOLD",
        "device": DEVICE_SETTING, "threads": "FLIP_DETECTOR_THREADS",
    }  # fmt: skip

    backend: str = "retinaface"
    models_dir: str
    batch_size: int = 8
    # Faces at or above this are recorded; the sample is kept on keep_threshold.
    min_face_score: float = 0.5
    keep_threshold: float = 0.9
    max_pixels: int = MAX_PIXELS
    # Images are shrunk to this longest side before detection; boxes are mapped back.
    max_side: int = 1024
    # cpu | cuda | cuda:N (core/io/devices.py)
    device: str = "cpu"
    # torch threads of the detector process (core/curation/detectors.py: DETECTOR_THREADS)
    threads: int = DETECTOR_THREADS

    _detector: FaceDetector | None = PrivateAttr(default=None)

    def setup_for_execution(self, context) -> None:
        self.require("backend", self.backend in BACKENDS, f"is not one of {BACKENDS}")
        self.require("keep_threshold", 0.0 < self.keep_threshold < 1.0, "must lie in (0, 1)")
        self.require("threads", self.threads >= 1, "must be at least 1")
        torch_device(self.device)  # fails naming FLIP_DEVICE when this machine lacks it

    def get_detector(self) -> FaceDetector:
        # Built once per process: loading checks the weights' SHA-256 and fails fast naming the file.
        if self._detector is None:
            self._detector = build_detector(
                self.backend, Path(self.models_dir), self.batch_size, self.min_face_score, self.device, self.threads
            )
        return self._detector


# The call limits of an OpenAI-compatible endpoint; per-run budgets of 0 mean unlimited.
_LIMITS = ("concurrency", "max_retries", "timeout_s", "max_requests", "max_tokens")


class _OpenAICompatible(EnvSettings):
    """What every OpenAI-compatible endpoint needs: where, the key, and the call limits."""

    base_url: str
    # Only ever an EnvVar (see settings.py): the UI and run config show its name, never its value.
    api_key: Optional[str] = None
    concurrency: int = 2
    max_retries: int = RetryPolicy.max_retries
    timeout_s: int = 60
    max_requests: int = Budget.max_requests
    max_tokens: int = Budget.max_tokens

    def _check(self) -> None:
        if self.base_url:
            check_endpoint(self.base_url, self.api_key, self.setting("base_url"))
        for name in ("concurrency", "timeout_s"):
            self.require(name, getattr(self, name) >= 1, "must be at least 1")
        for name in ("max_retries", "max_requests", "max_tokens"):
            self.require(name, getattr(self, name) >= 0, "must not be negative")

    @property
    def endpoint(self) -> str:
        return self.base_url

    def _serving(self, storage: FlipStorage) -> str:
        """The URL the client calls."""
        return self.base_url

    def client(self, storage: FlipStorage) -> LLMClient:
        """A client with the persistent reply cache in the storage's llm_cache folder and a fresh
        per-run budget."""
        return LLMClient(
            self._serving(storage),
            self.api_key,
            ResponseCache(storage.directory("llm_cache") / "replies.sqlite"),
            Budget(max_requests=self.max_requests, max_tokens=self.max_tokens),
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(max_retries=self.max_retries),
        )


class LLMResource(_OpenAICompatible):
    """The language model that denoises captions, behind an OpenAI-compatible chat API.

    Without OPENAI_BASE_URL, the runs share a local llama.cpp server serving SmolLM2, joined by a
    run's first `client`; its state is in the storage's folder llm_server (FLIP_HOME/llm_server,
    see SharedLLMServer), and it stops itself local_idle_s after the last run let go of it.
    OPENAI_API_KEY is needed when the URL is not loopback. timeout_s bounds one attempt of a
    request, from connect to last byte; above max_fallback_share of answers falling back, a shard
    fails as an outage.
    """

    ENV = {
        "base_url": "OPENAI_BASE_URL", "api_key": "OPENAI_API_KEY",
        **prefixed("FLIP_LLM", "model", *_LIMITS, "max_fallback_share", "local_idle_s"),
    }  # fmt: skip

    base_url: str = ""
    # Empty: the one model the server serves.
    model: str = ""
    max_fallback_share: float = DenoiseSettings.max_fallback_share
    local_idle_s: int = LOCAL_IDLE_S

    _local: SharedLLMServer | None = PrivateAttr(default=None)
    _local_url: str = PrivateAttr(default="")

    @property
    def endpoint(self) -> str:
        """OPENAI_BASE_URL, or the local server's URL while this run uses it."""
        return self.base_url or self._local_url

    def setup_for_execution(self, context) -> None:
        self._check()
        self.require("max_fallback_share", 0.0 <= self.max_fallback_share <= 1.0, "must lie in [0, 1]")
        self.require("local_idle_s", self.local_idle_s >= 0, "must not be negative")
        if not self.base_url:
            self.require("model", self.model in ("", MODEL_ALIAS), f"but without OPENAI_BASE_URL the local server serves {MODEL_ALIAS}")

    def _serving(self, storage: FlipStorage) -> str:
        """OPENAI_BASE_URL, else the local server, joined (or started) the first time."""
        if self.base_url:
            return self.base_url
        if self._local is None:
            # Its lease locks need a local file system; an object-store FLIP_HOME has none to share.
            storage.require("home", not is_url(storage.home), "is an object store: set OPENAI_BASE_URL (the local llama.cpp server keeps its state in a folder FLIP_HOME)")
            self._local = SharedLLMServer(storage.directory("llm_server"), self.local_idle_s)
            self._local_url = self._local.acquire()
        return self._local_url

    def teardown_after_execution(self, context) -> None:
        # Only lets go of the server: it stops itself once no run has used it for local_idle_s.
        if self._local is not None:
            self._local.release()
            self._local = None


class AIGCResource(_OpenAICompatible):
    """A paid vision-chat and image-generation API (OpenAI or compatible) for AIGC samples;
    without a base URL there is no backend and aigc_samples stays empty."""

    ENV = {
        "api_key": "OPENAI_API_KEY",
        **prefixed(
            "FLIP_AIGC", "base_url", "vision_model", "image_model", *_LIMITS,
            "image_price_usd", "input_usd_per_mtok", "output_usd_per_mtok",
        ),
    }  # fmt: skip

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
            self._check()


class CaptionCorpus(EnvSettings):
    """Caption-only Parquet files (a caption, TEXT or text column), comma-separated: more text
    for Word2Vec and positives for the caption classifier."""

    ENV = {"paths": "FLIP_CAPTION_CORPUS"}

    paths: str

    @property
    def files(self) -> list[Path]:
        return [Path(p.strip()) for p in self.paths.split(",") if p.strip()]

    def setup_for_execution(self, context) -> None:
        missing = [str(p) for p in self.files if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{self.setting('paths')}: file not found: {', '.join(missing)}")


class KeywordMiningResource(EnvSettings):
    """Word2Vec settings and the reviewed list of candidate face keywords (word,decision,reason
    per candidate)."""

    ENV = {"review_file": "FLIP_KEYWORD_REVIEW", **prefixed("FLIP_W2V", "epochs", "seed")}

    review_file: str
    vector_size: int = Word2VecSettings.vector_size
    window: int = Word2VecSettings.window
    min_count: int = Word2VecSettings.min_count
    epochs: int = Word2VecSettings.epochs
    seed: int = Word2VecSettings.seed

    def settings(self) -> Word2VecSettings:
        return Word2VecSettings(self.vector_size, self.window, self.min_count, self.epochs, self.seed)

    def setup_for_execution(self, context) -> None:
        if not Path(self.review_file).is_file():
            raise FileNotFoundError(f"{self.setting('review_file')}: keyword review file not found: {self.review_file}")
        for name in ("vector_size", "window", "min_count", "epochs"):
            self.require(name, getattr(self, name) >= 1, "must be at least 1")


class _CaptionClassifierUse(EnvSettings):
    """How the caption classifier meets a caption, the same when it is trained and measured as
    when it filters: captions too long dropped, the rest cut to max_length tokens, on one device."""

    # The classifier is scored with the token length it was trained with.
    max_length: int = TrainingSettings.max_length
    # Longer captions are page dumps, not descriptions: dropped, never trained on nor scored.
    max_caption_chars: int = WebDatasetSettings.max_chars
    score_batch_size: int = 64
    # cpu | cuda | cuda:N (core/io/devices.py)
    device: str = "cpu"

    def setup_for_execution(self, context) -> None:
        for name in ("score_batch_size", "max_caption_chars"):
            self.require(name, getattr(self, name) >= 1, "must be at least 1")
        self.require("max_length", 8 <= self.max_length <= 512, "must lie in [8, 512]")
        torch_device(self.device)  # fails naming FLIP_DEVICE when this machine lacks it


_USE_ENV = {"max_length": "FLIP_CLASSIFIER_MAX_LENGTH", "device": DEVICE_SETTING}


class CaptionTrainingResource(_CaptionClassifierUse):
    """What building the caption classifier reads: its training set and fine-tuning settings, the
    reviewed real captions (face_caption_review.csv) it is measured on and its threshold chosen
    from, and its independent face-description test (CelebA attribute captions)."""

    ENV = {
        "base_model": "FLIP_CLASSIFIER_BASE",
        **prefixed("FLIP_CLASSIFIER", "max_samples", "epochs", "dev_precision", "min_precision", "min_recall"),
        "review_file": "FLIP_CAPTION_REVIEW", "training_labels": "FLIP_CAPTION_TRAINING_LABELS",
        "celeba_attr": "FLIP_CELEBA_ATTR", "eval_samples": "FLIP_FACE_EVAL_SAMPLES", **_USE_ENV,
    }  # fmt: skip

    base_model: str
    max_samples: int = WebDatasetSettings.max_samples
    # Generated face descriptions drawn per label file (CelebA, UTKFace, FER2013) before the
    # dataset caps them at their share of the positives.
    generated_per_dataset: int = 3000
    epochs: int = TrainingSettings.epochs
    batch_size: int = TrainingSettings.batch_size
    learning_rate: float = TrainingSettings.learning_rate
    frozen_layers: int = TrainingSettings.frozen_layers
    seed: int = TrainingSettings.seed
    review_file: str
    # Hand-labelled training captions (caption_training.load_training_labels): their labels
    # override the cues'. Never a reviewed caption (check no_reviewed_caption).
    training_labels: str = str(files("flip_assets") / "face_caption_training_labels.csv")
    # None: the threshold of highest weighted F1 on the reviewed dev split. Else the one of highest
    # recall whose weighted precision there reaches this (none does: highest F1). With ~30 dev
    # face captions, a precision target picks a threshold resting on a handful of them (0.8 gave
    # dev recall 0.05), so the default balances both.
    dev_precision: Optional[float] = None
    # Blocking floors on weighted precision and recall on the reviewed test split: a model below
    # either never filters data. They stop a model that went wrong (the keyword-only model:
    # 0.06 / 0.16) and lie below the 90% intervals of the pipeline's model (lower ends 0.41 /
    # 0.54); issue 9's target (0.8 / 0.8) is reported
    # beside them, not enforced (not reached).
    min_precision: float = 0.4
    min_recall: float = 0.5
    # The face-description test's CelebA file; the generated training descriptions read the
    # train splits of the label files beside it (celeba_attr, utkface, fer2013 .parquet).
    celeba_attr: str
    eval_samples: int = 500
    eval_target_accuracy: float = 0.97

    def training_settings(self) -> TrainingSettings:
        return TrainingSettings(
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            max_length=self.max_length, seed=self.seed, frozen_layers=self.frozen_layers,
        )  # fmt: skip

    def dataset_settings(self) -> WebDatasetSettings:
        return WebDatasetSettings(max_samples=self.max_samples, seed=self.seed, max_chars=self.max_caption_chars)

    @property
    def face_labels_dir(self) -> Path:
        return Path(self.celeba_attr).parent

    def setup_for_execution(self, context) -> None:
        if not (Path(self.base_model) / "config.json").is_file():
            raise FileNotFoundError(f"{self.setting('base_model')}: no Hugging Face model in {self.base_model}")
        if not Path(self.review_file).is_file():
            raise FileNotFoundError(f"{self.setting('review_file')}: caption review file not found: {self.review_file}")
        if not Path(self.training_labels).is_file():
            raise FileNotFoundError(f"{self.setting('training_labels')}: caption training labels not found: {self.training_labels}")
        for name in ("max_samples", "epochs", "batch_size", "eval_samples"):
            self.require(name, getattr(self, name) >= 1, "must be at least 1")
        self.require("generated_per_dataset", self.generated_per_dataset >= 0, "must not be negative")
        self.require("frozen_layers", 0 <= self.frozen_layers <= 6, "must lie in [0, 6] (MiniLM-L6 has 6 layers)")
        if self.dev_precision is not None:
            self.require("dev_precision", 0.0 <= self.dev_precision <= 1.0, "must lie in [0, 1]")
        for name in ("min_precision", "min_recall"):
            self.require(name, 0.0 <= getattr(self, name) <= 1.0, "must lie in [0, 1]")
        super().setup_for_execution(context)


class CaptionFilterResource(_CaptionClassifierUse):
    """How the trained caption classifier filters captions (face_text_pairs of each shard, the
    denoising evaluation set, the face-description test): its threshold and how it scores. Reads
    none of the training files."""

    ENV = {"keep_threshold": "FLIP_TEXT_THRESHOLD", **_USE_ENV}

    # None: the threshold caption_classifier chose on the reviewed dev split; else keep a
    # face-text pair when its caption scores above this.
    keep_threshold: Optional[float] = None

    def threshold(self, classifier_dir: Path) -> float:
        """FLIP_TEXT_THRESHOLD when set, else the threshold saved with the classifier."""
        return chosen_threshold(classifier_dir) if self.keep_threshold is None else self.keep_threshold

    def setup_for_execution(self, context) -> None:
        if self.keep_threshold is not None:
            self.require("keep_threshold", 0.0 <= self.keep_threshold < 1.0, "must lie in [0, 1) (unset: the chosen threshold)")
        super().setup_for_execution(context)
