"""Detector recall and precision against 300-W faces (boxes from 68 landmarks).

Match rule. A 300-W box spans the 68 landmarks: brows to chin, tighter than a detector's box
(which includes the forehead), so IoU alone punishes a correct detection. A detection matches a
labelled face when the landmark box's centre lies inside the detection and the detection covers
at least half of the landmark box (intersection / landmark-box area >= 0.5) and IoU >= 0.25.
Matching is one-to-one, greedy by detection score.

300-W leaves many real faces unlabelled (profiles, background people, the other faces of group
photos), so an unmatched detection is not necessarily a false positive. Each unmatched detection
is shown to a second, independent detector (YuNet) on a crop around it: if YuNet also finds a
face there it counts as an unlabelled face, otherwise as a false-positive candidate, to be
looked at (`fp_candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

from flip_assets.core.curation.detectors import FaceDetector
from flip_assets.core.io.images import MAX_PIXELS, decode_rgb


@dataclass
class EvalResult:
    dataset: str
    threshold: float
    labelled_faces: int
    matched: int
    detections: int
    unlabelled_faces: int  # unmatched detections a second detector confirms as faces
    fp_candidates: list[tuple[str, list[float], float]] = field(default_factory=list)  # image, box, score

    @property
    def recall(self) -> float:
        return self.matched / self.labelled_faces if self.labelled_faces else 0.0

    @property
    def precision(self) -> float:
        """Detections that are faces (labelled or confirmed unlabelled) over all detections."""
        return (self.detections - len(self.fp_candidates)) / self.detections if self.detections else 1.0

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "threshold": self.threshold,
            "labelled_faces": self.labelled_faces,
            "matched": self.matched,
            "recall": round(self.recall, 4),
            "detections": self.detections,
            "unmatched_detections": self.detections - self.matched,
            "unlabelled_faces_confirmed": self.unlabelled_faces,
            "false_positive_candidates": len(self.fp_candidates),
            "precision": round(self.precision, 4),
        }


def load_300w(path) -> list[tuple[str, bytes, np.ndarray]]:
    """(image_id, jpeg bytes, labelled boxes (N, 4)) per distinct picture."""
    table = pq.read_table(path, columns=["image_id", "image", "face_box"]).to_pylist()
    pictures: dict[str, tuple[bytes, list]] = {}
    for row in table:
        pictures.setdefault(row["image_id"], (row["image"], []))[1].append(row["face_box"])
    return [(k, img, np.array(boxes, np.float32)) for k, (img, boxes) in pictures.items()]


def _match_matrix(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """(D, G) booleans: detection d may match labelled face g under the rule above."""
    if len(dets) == 0 or len(gts) == 0:
        return np.zeros((len(dets), len(gts)), bool)
    lt = np.maximum(dets[:, None, :2], gts[None, :, :2])
    rb = np.minimum(dets[:, None, 2:], gts[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_d = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    area_g = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    iou = inter / (area_d[:, None] + area_g[None, :] - inter)
    centre = (gts[:, :2] + gts[:, 2:]) / 2
    inside = (
        (centre[None, :, 0] >= dets[:, None, 0]) & (centre[None, :, 0] <= dets[:, None, 2])
        & (centre[None, :, 1] >= dets[:, None, 1]) & (centre[None, :, 1] <= dets[:, None, 3])
    )
    return inside & (inter / area_g[None, :] >= 0.5) & (iou >= 0.25)


def match(dets: np.ndarray, scores: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """Index of the labelled face each detection matches, or -1; one-to-one, best score first."""
    allowed = _match_matrix(dets, gts)
    assigned = np.full(len(dets), -1)
    taken = np.zeros(len(gts), bool)
    for d in np.argsort(-scores):
        candidates = np.flatnonzero(allowed[d] & ~taken)
        if len(candidates):
            # Among allowed faces, the nearest centre.
            centres = (gts[candidates, :2] + gts[candidates, 2:]) / 2
            dc = (dets[d, :2] + dets[d, 2:]) / 2
            g = candidates[np.argmin(((centres - dc) ** 2).sum(1))]
            assigned[d] = g
            taken[g] = True
    return assigned


def _crop_around(rgb: np.ndarray, box: np.ndarray, margin: float = 0.6) -> np.ndarray:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    h_img, w_img = rgb.shape[:2]
    cx0, cy0 = int(max(0, x0 - margin * w)), int(max(0, y0 - margin * h))
    cx1, cy1 = int(min(w_img, x1 + margin * w)), int(min(h_img, y1 + margin * h))
    return rgb[cy0:cy1, cx0:cx1]


def evaluate(
    name: str,
    pictures: list[tuple[str, bytes, np.ndarray]],
    detector: FaceDetector,
    threshold: float,
    confirmer: FaceDetector | None = None,
) -> EvalResult:
    result = EvalResult(dataset=name, threshold=threshold, labelled_faces=0, matched=0, detections=0, unlabelled_faces=0)
    images = [decode_rgb(img, MAX_PIXELS).rgb for _, img, _ in pictures]
    for (image_id, _, gts), rgb, det in zip(pictures, images, detector.detect(images)):
        keep = det.scores > threshold
        boxes, scores = det.boxes[keep], det.scores[keep]
        assigned = match(boxes, scores, gts)
        result.labelled_faces += len(gts)
        result.detections += len(boxes)
        result.matched += int((assigned >= 0).sum())
        for box, score in zip(boxes[assigned < 0], scores[assigned < 0]):
            crop = _crop_around(rgb, box)
            confirmed = confirmer is not None and crop.size and len(confirmer.detect([crop])[0].scores) > 0
            if confirmed:
                result.unlabelled_faces += 1
            else:
                result.fp_candidates.append((image_id, box.tolist(), float(score)))
    return result
