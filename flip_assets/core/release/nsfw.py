"""NSFW tagging of images with NudeNet (package `nudenet`, whose wheel ships its ONNX weights,
run on CPU by onnxruntime: nothing is downloaded).

NudeNet 3 is a detector of exposed and covered body parts. An image's NSFW score is the best
score of an exposed intimate part (0 when none is found; NudeNet reports parts from 0.2 up), and
the score is turned into LAION's value set with two thresholds:
    score >= nsfw_threshold  -> NSFW
    score >= low_threshold   -> UNSURE
    otherwise                -> UNLIKELY
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNLIKELY, UNSURE, NSFW = "UNLIKELY", "UNSURE", "NSFW"
LABELS = (UNLIKELY, UNSURE, NSFW)
# NudeNet 3 classes that make an image NSFW (the others are covered parts, faces, feet, ...).
EXPOSED_PARTS = frozenset(
    {"FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "BUTTOCKS_EXPOSED", "ANUS_EXPOSED"}
)
CLASSIFIER_NAME = "nudenet 3.4.2 (320n.onnx, exposed-part detector)"


@dataclass(frozen=True)
class NsfwThresholds:
    nsfw: float = 0.5
    low: float = 0.3

    def label(self, score: float) -> str:
        return NSFW if score >= self.nsfw else UNSURE if score >= self.low else UNLIKELY


class NsfwClassifier:
    """Scores RGB images; the ONNX session is built once, on first use."""

    def __init__(self, batch_size: int = 8):
        self.batch_size = batch_size
        self._detector = None

    def _load(self):
        if self._detector is None:
            from nudenet import NudeDetector  # imports onnxruntime: only when scoring

            self._detector = NudeDetector()
        return self._detector

    def scores(self, images: Sequence[np.ndarray]) -> list[float]:
        """One score in [0, 1] per RGB image (H, W, 3 uint8)."""
        if not images:
            return []
        # NudeNet reads images as OpenCV does (BGR); an array goes the same way as a file path.
        bgr = [np.ascontiguousarray(rgb[:, :, ::-1]) for rgb in images]
        found = self._load().detect_batch(bgr, batch_size=self.batch_size)
        return [max((d["score"] for d in parts if d["class"] in EXPOSED_PARTS), default=0.0) for parts in found]
