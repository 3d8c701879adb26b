"""The evaluation domain's settings (variables in ENV; the rule is in ../settings.py)."""

from __future__ import annotations

from flip_assets.defs.settings import EnvSettings


class EvaluationResource(EnvSettings):
    """How many images the evaluation reads, the quality sample, and the ablation's runs."""

    ENV = {
        "test_images": "FLIP_EVAL_TEST_IMAGES", "train_images": "FLIP_EVAL_TRAIN_IMAGES",
        "quality_samples": "FLIP_EVAL_QUALITY_SAMPLES", "ablation_sources": "FLIP_ABLATION_SOURCES",
        "ablation_seeds": "FLIP_ABLATION_SEEDS", "resamples": "FLIP_EVAL_RESAMPLES",
    }  # fmt: skip

    # Images per scored split (CelebA test, FER2013 test, UTKFace test, 300-W test part; 0: all),
    # a fixed sample: all by default, the tables score whole test splits.
    test_images: int = 0
    # Images per split that fits a probe (FER2013 and UTKFace train; 0: all).
    train_images: int = 1000
    # Bootstrap resamples of each interval (items by cluster, and seeds).
    resamples: int = 1000
    # Pairs per training source for Table 9's CLIP score and caption perplexity.
    quality_samples: int = 128
    # Training sources of the ablation, ';'-separated, each a '+'-joined list of pair assets.
    ablation_sources: str = "celeba_caption_pairs;celeba_caption_pairs+released_pairs;celeba_caption_pairs+raw_shard_pairs"
    # Comma-separated seeds; every source trains once per seed from the same initialisation.
    ablation_seeds: str = "0,1"

    @property
    def sources(self) -> list[str]:
        return [s.strip() for s in self.ablation_sources.split(";") if s.strip()]

    @property
    def seeds(self) -> list[int]:
        try:
            return [int(s) for s in self.ablation_seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"{self.setting('ablation_seeds')}={self.ablation_seeds!r} is not a comma-separated list of integers") from None

    def setup_for_execution(self, context) -> None:
        for name in ("test_images", "train_images"):
            self.require(name, getattr(self, name) >= 0, "must not be negative")
        self.require("quality_samples", self.quality_samples >= 1, "must be at least 1")
        self.require("resamples", self.resamples >= 100, "must be at least 100")
        self.require("ablation_sources", bool(self.sources), "names no source")
        self.require("ablation_seeds", len(self.seeds) >= 2, "needs at least 2 seeds, so that the spread is seen")
