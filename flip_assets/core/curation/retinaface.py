"""RetinaFace (MobileNet-0.25 backbone) in plain PyTorch, with batched, vectorised decoding.

Architecture, anchors and decoding follow ../shared/models/README.md: a MobileNetV1 x0.25
backbone, a 3-level FPN (64 channels), an SSH context module per level, and per level two
anchors with 1x1 heads for class, box and five landmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
# torch at the top: the classes below subclass nn.Module. detectors.py imports it where a detector is built,
# so loading the definitions never pays for torch (test_import_cost.py).
import torch
import torch.nn.functional as F
from torch import nn

from flip_assets.core.io.storage import sha256_of

RETINAFACE_SHA256 = "38ec7bb3c9cbfe2f40edabc05fab970a6d648747cbc534092be85d5eb9b37ed0"
# BGR channel means the checkpoint was trained with.
BGR_MEAN = (104.0, 117.0, 123.0)
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)


class WeightsError(RuntimeError):
    """The weights file is missing, corrupt or not the expected release."""


def _conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


def _conv_bn_no_relu(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, 1, 1, bias=False), nn.BatchNorm2d(oup))


def _conv_bn_1x1(inp: int, oup: int, leaky: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


def _conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class MobileNetV1x025(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = _conv_bn_1x1(in_channels[0], out_channels, leaky)
        self.output2 = _conv_bn_1x1(in_channels[1], out_channels, leaky)
        self.output3 = _conv_bn_1x1(in_channels[2], out_channels, leaky)
        self.merge1 = _conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = _conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.conv3X3 = _conv_bn_no_relu(in_channels, out_channels // 2)
        self.conv5X5_1 = _conv_bn(in_channels, out_channels // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn_no_relu(out_channels // 4, out_channels // 4)
        self.conv7X7_2 = _conv_bn(out_channels // 4, out_channels // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn_no_relu(out_channels // 4, out_channels // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(self.conv7X7_2(c5_1))], 1)
        return F.relu(out)


class _Head(nn.Module):
    """A 1x1 conv head; its output is flattened to (N, H*W*anchors, values)."""

    def __init__(self, in_channels: int, values: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_channels, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """Returns (box offsets, face scores, landmark offsets) for every anchor."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MobileNetV1x025()
        self.fpn = FPN((64, 128, 256), 64)
        self.ssh1, self.ssh2, self.ssh3 = SSH(64, 64), SSH(64, 64), SSH(64, 64)
        self.ClassHead = nn.ModuleList([_Head(64, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(64, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(64, 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p1, p2, p3 = self.fpn(self.body(x))
        feats = [self.ssh1(p1), self.ssh2(p2), self.ssh3(p3)]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], 1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], 1)
        landms = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], 1)
        return loc, F.softmax(conf, dim=-1)[..., 1], landms


def load_retinaface(weights: Path, expected_sha256: str = RETINAFACE_SHA256, device: torch.device | str = "cpu") -> RetinaFace:
    """Build the network on `device` and load the checkpoint after checking its SHA-256."""
    weights = Path(weights)
    if not weights.is_file():
        raise WeightsError(f"RetinaFace weights not found: {weights}")
    actual = sha256_of(weights)
    if actual != expected_sha256:
        raise WeightsError(
            f"RetinaFace weights {weights} have SHA-256 {actual}, expected {expected_sha256}"
        )
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise WeightsError(f"cannot read RetinaFace weights {weights}: {exc}") from exc
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = RetinaFace().to(device)
    model.load_state_dict(state, strict=True)
    return model.eval()


class AnchorCache:
    """Anchors (cx, cy, w, h in pixels) per input size, built once per size."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def get(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._cache:
            self._cache[key] = self._build(height, width)
        return self._cache[key]

    @staticmethod
    def _build(height: int, width: int) -> torch.Tensor:
        levels = []
        for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
            fh, fw = math.ceil(height / stride), math.ceil(width / stride)
            ys, xs = torch.meshgrid(torch.arange(fh), torch.arange(fw), indexing="ij")
            cx = (xs.reshape(-1, 1).float() + 0.5) * stride
            cy = (ys.reshape(-1, 1).float() + 0.5) * stride
            n = len(sizes)
            size = torch.tensor(sizes, dtype=torch.float32).expand(cx.shape[0], n)
            # Anchor order is (row, col, size), matching the heads' flattening.
            levels.append(torch.stack([cx.expand(-1, n), cy.expand(-1, n), size, size], -1).reshape(-1, 4))
        return torch.cat(levels, 0)


@dataclass
class Detections:
    """Faces of one image: boxes (N, 4) x0 y0 x1 y1, scores (N,), landmarks (N, 5, 2)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray


def decode(
    loc: torch.Tensor, landms: torch.Tensor, anchors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre-size decoding of a whole batch at once: (N, A, 4) boxes and (N, A, 5, 2) landmarks."""
    centre, size = anchors[:, :2], anchors[:, 2:]
    cxy = centre + loc[..., :2] * VARIANCES[0] * size
    wh = size * torch.exp(loc[..., 2:] * VARIANCES[1])
    boxes = torch.cat([cxy - wh / 2, cxy + wh / 2], -1)
    points = centre.unsqueeze(1) + landms.reshape(*landms.shape[:-1], 5, 2) * VARIANCES[0] * size.unsqueeze(1)
    return boxes, points


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = torch.argsort(scores, descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def postprocess(
    loc: torch.Tensor,
    scores: torch.Tensor,
    landms: torch.Tensor,
    anchors: torch.Tensor,
    min_score: float,
    nms_iou: float = 0.4,
    top_k: int = 750,
) -> list[Detections]:
    """Threshold first so decoding and NMS touch only the few candidate anchors."""
    out = []
    for b in range(loc.shape[0]):
        idx = torch.nonzero(scores[b] > min_score).squeeze(1)
        if idx.numel() > 5000:
            idx = idx[torch.topk(scores[b, idx], 5000).indices]
        boxes, points = decode(loc[b, idx], landms[b, idx], anchors[idx])
        s = scores[b, idx]
        keep = nms(boxes, s, nms_iou)[:top_k] if idx.numel() else idx
        out.append(
            Detections(
                boxes=boxes[keep].numpy().astype(np.float32),
                scores=s[keep].numpy().astype(np.float32),
                landmarks=points[keep].numpy().astype(np.float32),
            )
        )
    return out
