"""Face detectors behind one interface: detect(list of RGB arrays) -> list of Detections.

Backends:
- `retinaface` (default): RetinaFace MobileNet-0.25 in this project's PyTorch code, batched.
- `yunet`: OpenCV's YuNet, fast on the CPU; its scores run lower (clear faces about 0.9).
- `retinaface_resnet50`: the `retina-face` package's ResNet-50, the paper's exact detector,
  usable only when its weights are already on disk (nothing is downloaded here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from flip_assets.core.io.devices import load_torch, torch_device, torch_threads
from flip_assets.core.io.storage import sha256_of

# torch (and retinaface.py, which builds on it) is imported where a detector is built or run:
# the definitions import this module, and loading them must stay cheap (issue 23).
if TYPE_CHECKING:
    import torch

    from flip_assets.core.curation.retinaface import Detections

YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
BACKENDS = ("retinaface", "yunet", "retinaface_resnet50")
# Torch threads of a RetinaFace detector process (FLIP_DETECTOR_THREADS). One: backfill workers
# share their cores, and torch's OpenMP threads spin at every layer's barrier while a thread of
# theirs waits for a core another process holds; with 2 threads on 2 busy cores the detector ran
# 4-5x slower than with 1 (bench/README.md, "Face detection under load"). devices.load_torch
# makes idle OpenMP threads sleep, for a user who raises it.
DETECTOR_THREADS = 1


class FaceDetector(Protocol):
    name: str

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...


# glibc's malloc keeps the pages of freed activation buffers inside its heap; with a new padded
# shape every few batches, long-lived allocations made in between (anchors, oneDNN primitives)
# pin them and the heap grows with the number of shapes seen (2.8 GiB on COCO + 300-W Helen).
# Every TRIM_EVERY batches the free pages go back to the kernel; at every batch that cost a
# quarter of the rate (the pages fault in again), at every 8th a few per cent.
TRIM_EVERY = 8


def _malloc_trim():
    """glibc's malloc_trim(0), or None where the C library has none (macOS, musl)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _empty() -> Detections:
    from flip_assets.core.curation.retinaface import Detections

    return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))


def pad_batches(images: list[np.ndarray], batch_size: int, multiple: int = 32):
    """Batch images that pad to the same shape.

    Yields (indices, BGR float tensor N x 3 x H x W). Each image is padded to its own size
    rounded up to `multiple`, whatever its neighbours: padding changes what the network sees
    near the image's edges (biases make padded pixels non-zero after the first layer), so a
    shared, larger padding would make a score depend on the other images in the batch.
    Padding with the channel mean makes padded pixels zero after normalisation.
    """
    import torch

    from flip_assets.core.curation.retinaface import BGR_MEAN

    buckets: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        buckets.setdefault((-(-h // multiple) * multiple, -(-w // multiple) * multiple), []).append(i)
    bgr_mean = np.array(BGR_MEAN, np.float32)[:, None, None]
    for (h, w), bucket in sorted(buckets.items(), key=lambda kv: kv[0][0] * kv[0][1], reverse=True):
        for start in range(0, len(bucket), batch_size):
            idx = bucket[start : start + batch_size]
            batch = np.empty((len(idx), 3, h, w), np.float32)
            for row, i in enumerate(idx):
                ih, iw = images[i].shape[:2]
                # One pass per image: RGB->BGR, HWC->CHW, uint8->float and mean subtraction together.
                np.subtract(images[i][..., ::-1].transpose(2, 0, 1), bgr_mean, out=batch[row, :, :ih, :iw])
                batch[row, :, ih:, :] = 0
                batch[row, :, :ih, iw:] = 0
            yield idx, torch.from_numpy(batch)


class RetinaFaceDetector:
    name = "retinaface"

    def __init__(
        self, weights: Path, batch_size: int = 8, min_score: float = 0.5, threads: int = DETECTOR_THREADS, device: str = "cpu"
    ):
        load_torch()
        from flip_assets.core.curation.retinaface import AnchorCache, load_retinaface

        self.omp_wait_policy = os.environ["OMP_WAIT_POLICY"]  # as load_torch left it, for the benchmark's record

        self.device = torch_device(device)
        self.model = load_retinaface(weights, device=self.device)
        self.batch_size = batch_size
        self.min_score = min_score
        self.anchors = AnchorCache()
        self._trim = _malloc_trim()
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads} (FLIP_DETECTOR_THREADS)")
        self.threads = threads

    def forward(self, batch: torch.Tensor):
        import torch

        with torch_threads(self.threads), torch.inference_mode():
            return self.model(batch.to(self.device))

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        import torch

        from flip_assets.core.curation.retinaface import postprocess

        results: list[Detections] = [_empty() for _ in images]
        with torch_threads(self.threads), torch.inference_mode():
            for n, (idx, batch) in enumerate(pad_batches(images, self.batch_size), 1):
                if self._trim and n % TRIM_EVERY == 0:
                    self._trim(0)
                # Decoding and NMS touch a few candidate anchors, with a Python loop: on the CPU.
                loc, scores, landms = (t.cpu() for t in self.forward(batch))
                anchors = self.anchors.get(batch.shape[2], batch.shape[3])
                for i, det in zip(idx, postprocess(loc, scores, landms, anchors, self.min_score)):
                    h, w = images[i].shape[:2]
                    det.boxes[:, 0::2] = det.boxes[:, 0::2].clip(0, w)
                    det.boxes[:, 1::2] = det.boxes[:, 1::2].clip(0, h)
                    results[i] = det
        if self._trim:
            self._trim(0)
        return results


class YuNetDetector:
    name = "yunet"

    def __init__(self, model_path: Path, min_score: float = 0.5, nms_iou: float = 0.3):
        import cv2

        from flip_assets.core.curation.retinaface import WeightsError

        model_path = Path(model_path)
        if not model_path.is_file():
            raise WeightsError(f"YuNet model not found: {model_path}")
        if sha256_of(model_path) != YUNET_SHA256:
            raise WeightsError(f"YuNet model {model_path} does not have the expected SHA-256 {YUNET_SHA256}")
        self._cv2 = cv2
        self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), min_score, nms_iou, 5000)

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        from flip_assets.core.curation.retinaface import Detections

        out = []
        for rgb in images:
            h, w = rgb.shape[:2]
            self._net.setInputSize((w, h))
            _, faces = self._net.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
            if faces is None or len(faces) == 0:
                out.append(_empty())
                continue
            faces = faces.astype(np.float32)
            boxes = np.stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]], 1)
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
            out.append(Detections(boxes, faces[:, 14].copy(), faces[:, 4:14].reshape(-1, 5, 2).copy()))
        return out


def retinaface_resnet50_weights() -> Path:
    """Where the `retina-face` package looks for its ResNet-50 weights (it would download them)."""
    home = Path(os.environ.get("DEEPFACE_HOME", str(Path.home())))
    return home / ".deepface" / "weights" / "retinaface.pth"


class RetinaFaceResNet50Detector:
    name = "retinaface_resnet50"

    def __init__(self, min_score: float = 0.5):
        from flip_assets.core.curation.retinaface import WeightsError

        weights = retinaface_resnet50_weights()
        if not weights.is_file():
            raise WeightsError(
                f"retina-face ResNet-50 weights not found at {weights}; this machine cannot download them. "
                "Copy retinaface.pth there (or set DEEPFACE_HOME), or use FLIP_DETECTOR=retinaface."
            )
        # The package picks TensorFlow first when installed; we ship torch, so force it.
        os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "pytorch")
        from retinaface import RetinaFace as package

        self._package = package
        self._model = package.build_model()
        self.min_score = min_score

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        from flip_assets.core.curation.retinaface import Detections

        out = []
        for rgb in images:
            faces = self._package.detect_faces(np.ascontiguousarray(rgb[:, :, ::-1]), threshold=self.min_score, model=self._model)
            if not isinstance(faces, dict) or not faces:
                out.append(_empty())
                continue
            order = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
            values = list(faces.values())
            out.append(
                Detections(
                    np.array([f["facial_area"] for f in values], np.float32),
                    np.array([f["score"] for f in values], np.float32),
                    np.array([[f["landmarks"][k] for k in order] for f in values], np.float32),
                )
            )
        return out


def build_detector(
    backend: str,
    models_dir: Path,
    batch_size: int = 8,
    min_score: float = 0.5,
    device: str = "cpu",
    threads: int = DETECTOR_THREADS,
) -> FaceDetector:
    """device and threads apply to `retinaface`; YuNet (OpenCV) and the retina-face package run on the CPU."""
    if backend == "retinaface":
        return RetinaFaceDetector(
            Path(models_dir) / "retinaface_mobilenet0.25.pth", batch_size, min_score, threads=threads, device=device
        )
    if backend == "yunet":
        return YuNetDetector(Path(models_dir) / "face_detection_yunet_2026may.onnx", min_score)
    if backend == "retinaface_resnet50":
        return RetinaFaceResNet50Detector(min_score)
    raise ValueError(f"unknown face detector backend {backend!r} (FLIP_DETECTOR); choose one of {BACKENDS}")
