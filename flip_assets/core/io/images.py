"""Decoding untrusted image bytes into RGB arrays, with a reason for every failure."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

# A truncated file must fail, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Larger images are refused before decoding (decompression bombs): the default of every stage
# that decodes images (the resources' max_pixels fields).
MAX_PIXELS = 40_000_000


class ImageRejected(ValueError):
    """The bytes cannot become a usable RGB image; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    source_mode: str  # PIL mode before conversion, e.g. CMYK, L, RGBA


def decode_rgb(data: bytes | None, max_pixels: int) -> DecodedImage:
    """Decode to RGB; refuse empty, corrupt, truncated and oversized images.

    The pixel count is checked from the header, before any pixel is decoded, so a
    decompression bomb costs nothing. Alpha is composited on white, since a transparent
    background is white on the web pages these images come from.
    """
    if not data:
        raise ImageRejected("empty_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageRejected("image_too_large", f"{width}x{height} > {max_pixels} pixels")
            img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("image_too_large", f"over {max_pixels} pixels: {exc}") from exc
    except Exception as exc:  # PIL raises many types for broken files
        raise ImageRejected("corrupt_image", f"{type(exc).__name__}: {exc}") from exc
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = np.asarray(img.convert("RGB"))
    return DecodedImage(rgb=rgb, source_mode=mode)


def resize_longest_side(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink so the longest side is at most max_side; returns the image and the scale applied."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)), scale
