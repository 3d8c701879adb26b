"""The release settings: NSFW thresholds and action, the blocklist, near-duplicate distance,
caption length bounds. Each lists its environment variables in ENV (rule: ../settings.py)."""

from __future__ import annotations

from typing import Optional

from flip_assets.core.io.images import MAX_PIXELS
from flip_assets.core.release.blocklist import Blocklist, read_blocklist
from flip_assets.core.release.nsfw import NsfwClassifier, NsfwThresholds
from flip_assets.core.release.release import NSFW_ACTIONS, ReleasePolicy
from flip_assets.defs.settings import EnvSettings


class ReleaseResource(EnvSettings):
    ENV = {
        "nsfw_threshold": "FLIP_NSFW_THRESHOLD", "nsfw_low_threshold": "FLIP_NSFW_LOW_THRESHOLD",
        "nsfw_action": "FLIP_NSFW_ACTION", "blocklist": "FLIP_BLOCKLIST",
        "near_duplicate_bits": "FLIP_NEAR_DUPLICATE_BITS",
    }  # fmt: skip

    # NSFW from this score of the image classifier, UNSURE from the low threshold.
    nsfw_threshold: float = NsfwThresholds.nsfw
    nsfw_low_threshold: float = NsfwThresholds.low
    # tag: release flagged samples with NSFW set (as LAION does); drop: exclude them (reason nsfw).
    nsfw_action: str = "tag"
    # A file of image URLs or SHA-256s to take out of the release; unset: none.
    blocklist: Optional[str] = None
    # Perceptual hashes (64 bits) at most this many bits apart are near-duplicates.
    near_duplicate_bits: int = 4
    # Bounds on the released caption's length in characters: others are excluded, and a blocking
    # expectation checks the release.
    min_text_chars: int = 1
    max_text_chars: int = 2000
    nsfw_batch_size: int = 8
    max_pixels: int = MAX_PIXELS

    def setup_for_execution(self, context) -> None:
        self.require("nsfw_threshold", 0.0 < self.nsfw_threshold <= 1.0, "must lie in (0, 1]")
        self.require(
            "nsfw_low_threshold", 0.0 < self.nsfw_low_threshold <= self.nsfw_threshold,
            f"must lie in (0, {self.setting('nsfw_threshold')}={self.nsfw_threshold}]",
        )  # fmt: skip
        self.require("nsfw_action", self.nsfw_action in NSFW_ACTIONS, f"is not one of {NSFW_ACTIONS}")
        self.require("near_duplicate_bits", 0 <= self.near_duplicate_bits <= 32, "must lie in [0, 32]")
        self.require("min_text_chars", self.min_text_chars >= 1, "must be at least 1")
        self.require("max_text_chars", self.max_text_chars >= self.min_text_chars, "must be at least min_text_chars")
        self.require("nsfw_batch_size", self.nsfw_batch_size >= 1, "must be at least 1")

    def classifier(self) -> NsfwClassifier:
        return NsfwClassifier(batch_size=self.nsfw_batch_size)

    def read_blocklist(self) -> Blocklist:
        """The blocklist, read at each materialization; a missing file or a malformed line fails
        naming the file (and line) and the variable."""
        try:
            return read_blocklist(self.blocklist)
        except (OSError, ValueError) as exc:
            raise type(exc)(f"{self.setting('blocklist')}: {exc}") from None

    def policy(self) -> ReleasePolicy:
        return ReleasePolicy(
            NsfwThresholds(self.nsfw_threshold, self.nsfw_low_threshold), self.nsfw_action, self.read_blocklist(),
            (self.min_text_chars, self.max_text_chars),
        )  # fmt: skip
