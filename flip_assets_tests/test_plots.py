"""core/io/plots.py: figures become real PNGs that Markdown metadata can carry."""

import base64

from flip_assets.core.io.plots import figure_png, markdown_image, new_figure


def test_figure_becomes_png_markdown():
    figure, axes = new_figure(3, 2)
    axes.plot([0, 1, 2], [2, 1, 3])
    png = figure_png(figure)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    markdown = markdown_image(png, "a curve")
    assert markdown.startswith("![a curve](data:image/png;base64,")
    assert base64.b64decode(markdown.split(",", 1)[1].rstrip(")")) == png
