"""The evaluation domain's settings (variables in ENV; the rule is in ../settings.py)."""

from __future__ import annotations

from flip_assets.defs.settings import EnvSettings


class EvaluationResource(EnvSettings):
    """How many images the evaluation reads, the quality sample, and the ablation's runs."""

    ENV = {
        "test_images": "FLIP_EVAL_TEST_IMAGES", "train_images": "FLIP_EVAL_TRAIN_IMAGES",
        "quality_samples": "FLIP_EVAL_QUALITY_SAMPLES", "resamples": "FLIP_EVAL_RESAMPLES", "ablation_seeds": "FLIP_ABLATION_SEEDS",
        "ablation_steps": "FLIP_ABLATION_STEPS", "ablation_pairs": "FLIP_ABLATION_PAIRS", "ablation_test_images": "FLIP_ABLATION_TEST_IMAGES",
    }  # fmt: skip

    # Images per scored split (CelebA test, FER2013 test, UTKFace test, 300-W test part; 0: all),
    # a fixed sample: all by default, the tables score whole test splits.
    test_images: int = 0
    # Images per split that fits a probe (FER2013 and UTKFace train; 0: all).
    train_images: int = 1000
    # Bootstrap resamples of each interval (items by cluster, and seeds).
    resamples: int = 1000
    # Pairs per training source of flip_eval_tables' caption perplexity.
    quality_samples: int = 128
    # Comma-separated seeds; every ablation source trains once per seed from the seed's initialisation.
    ablation_seeds: str = "0,1,2,3,4"
    # Steps of every ablation run and of Table 9's scorer (73 pairs, one batch, are learnt in ~20).
    ablation_steps: int = 20
    # Pairs per ablation source: the release's size, at most this (0: no cap).
    ablation_pairs: int = 0
    # Images per scored split in the ablation (0: all): it scores 3 sources x seeds models, so a
    # fixed sample, where flip_eval_tables scores whole test splits.
    ablation_test_images: int = 1000

    @property
    def seeds(self) -> list[int]:
        try:
            return [int(s) for s in self.ablation_seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"{self.setting('ablation_seeds')}={self.ablation_seeds!r} is not a comma-separated list of integers") from None

    def setup_for_execution(self, context) -> None:
        for name in ("test_images", "train_images", "ablation_test_images"):
            self.require(name, getattr(self, name) >= 0, "must not be negative")
        self.require("quality_samples", self.quality_samples >= 1, "must be at least 1")
        self.require("resamples", self.resamples >= 100, "must be at least 100")
        self.require("ablation_steps", self.ablation_steps >= 1, "must be at least 1")
        self.require("ablation_pairs", self.ablation_pairs >= 0, "must not be negative")
        self.require("ablation_seeds", len(self.seeds) >= 2, "needs at least 2 seeds, so that the spread is seen")
