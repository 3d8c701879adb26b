"""Figures for asset metadata: a matplotlib figure as PNG bytes, and PNG bytes as Markdown.

matplotlib is imported inside the functions (with the Agg backend, no screen needed) so that
importing flip_assets.core stays cheap.
"""

from __future__ import annotations

import base64
import io


def new_figure(width: float = 6.0, height: float = 4.0):
    """A figure and its axes, drawn off screen."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def figure_jpeg(figure, quality: int = 80) -> bytes:
    """Photographs (galleries) as JPEG: a tenth of their PNG size in the event log's metadata."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="jpeg", pil_kwargs={"quality": quality})
    return buffer.getvalue()


def image_suffix(image: bytes) -> str:
    """The file suffix of PNG or JPEG bytes."""
    return ".jpg" if image.startswith(b"\xff\xd8") else ".png"


def markdown_image(image: bytes, alt: str) -> str:
    """The PNG or JPEG inline in Markdown: the Dagster UI shows it in the asset's metadata."""
    mime = "image/jpeg" if image_suffix(image) == ".jpg" else "image/png"
    return f"![{alt}](data:{mime};base64,{base64.b64encode(image).decode('ascii')})"
