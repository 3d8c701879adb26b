"""Galleries: a few samples as one PNG, each a thumbnail with its detected face boxes drawn and
its text beneath, so a person can see what the release holds and what the filters turned away."""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from flip_assets.core.io.plots import figure_jpeg, new_figure
from flip_assets.core.analytics.statistics import RELEASED_SHOWN, STATISTICS_ARROW_TYPES, STATISTICS_COLUMNS
from flip_assets.core.io import storage
from flip_assets.core.io.shards import StaleShardError, read_sample_image

THUMBNAIL_SIDE = 256
CAPTION_WIDTH = 38  # characters per text line under a thumbnail


@dataclass
class GalleryItem:
    title: str  # shard/key
    image: bytes | None  # encoded image; None: shown as missing, never skipped
    boxes: list[list[float]] = field(default_factory=list)  # [x1, y1, x2, y2] in the image's pixels
    lines: list[str] = field(default_factory=list)  # captions and scores, one per line


def _score(value: float | None) -> str:
    # Truncated, not rounded: a face score of 0.8999 must not read as the 0.9 threshold.
    return "-" if value is None else f"{math.floor(value * 1000) / 1000:.3f}"


def _item(row: dict, lines: list[str]) -> GalleryItem:
    """A row of the gallery queries as an item; an image that cannot be read is shown as missing,
    with why, never left out."""
    try:
        image = read_sample_image({**row, "key": row["key"]})
        missing = None if image is not None else "no image recorded in raw_shards"
    except (OSError, StaleShardError) as e:
        image, missing = None, f"image unreadable: {e}"
    return GalleryItem(f"{row['shard']}/{row['key']}", image, row["boxes"] or [], lines + ([missing] if missing else []))


def released_items(rows: list[dict]) -> list[GalleryItem]:
    return [
        _item(r, [f"TEXT: {r['text']}", f"original: {r['original_caption']}",
                  f"face {_score(r['face_score'])} · text {_score(r['text_score'])}"])
        for r in rows
    ]  # fmt: skip


def rejection_items(rows: list[dict]) -> list[GalleryItem]:
    return [
        _item(r, [f"{r['kind']}", f"caption: {r['caption']}", f"face {_score(r['face_score'])} · text {_score(r['text_score'])}"])
        for r in rows
    ]  # fmt: skip


def _fetch(con, name: str, params: dict) -> list[dict]:
    cursor = con.execute(storage.sql_file(name), params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def shard_gallery_rows(release_path: Path, raw_path: Path, shard: str) -> list[dict]:
    """The released samples one shard's gallery shows: the query of the card's gallery
    (sql/gallery_released.sql) over this shard's release and raw_shards files."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(":memory:")
    try:
        for view, path in (("flip_release", release_path), ("raw_shards", raw_path)):
            try:
                table = storage.read_table(path)  # one shard's file
            except FileNotFoundError:  # no raw_shards here: the samples are shown, their images as missing
                table = pa.table({name: pa.array([], STATISTICS_ARROW_TYPES[kind]) for name, kind in STATISTICS_COLUMNS[view].items()})
            con.register(view, table.append_column("file_shard", pa.array([shard] * table.num_rows, pa.string())))
        return _fetch(con, "gallery_released.sql", {"count": RELEASED_SHOWN})
    finally:
        con.close()


def _thumbnail(item: GalleryItem):
    """The image as an RGB array no longer than THUMBNAIL_SIDE, its boxes scaled to it."""
    from PIL import Image

    if item.image is None:
        return None, []
    picture = Image.open(io.BytesIO(item.image)).convert("RGB")
    scale = min(1.0, THUMBNAIL_SIDE / max(picture.size))
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
    import numpy as np

    return np.asarray(picture), [[v * scale for v in box[:4]] for box in item.boxes]


def gallery_jpeg(items: list[GalleryItem], title: str, columns: int = 4) -> bytes:
    """One JPEG: a grid of thumbnails with red face boxes, each titled by its sample, its lines
    wrapped beneath. An empty list gives a figure that says so."""
    from matplotlib.patches import Rectangle

    rows = max(1, -(-len(items) // columns))
    figure, _ = new_figure(3.2 * columns, 4.6 * rows)
    figure.clear()
    figure.suptitle(title if items else f"{title}: none", fontsize=13)
    for n, item in enumerate(items):
        axes = figure.add_subplot(rows, columns, n + 1)
        axes.set_axis_off()
        pixels, boxes = _thumbnail(item)
        if pixels is None:
            axes.text(0.5, 0.7, "image missing", ha="center", transform=axes.transAxes)
        else:
            axes.imshow(pixels)
            for x1, y1, x2, y2 in boxes:
                axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="red", linewidth=1.5))
        axes.set_title(item.title, fontsize=8)
        text = "\n".join(textwrap.fill(line, CAPTION_WIDTH) for line in item.lines)
        axes.text(0.0, -0.03, text, transform=axes.transAxes, fontsize=7, va="top", ha="left", wrap=True)
    return figure_jpeg(figure)
