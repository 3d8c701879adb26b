"""The dataset statistics as Markdown tables and PNG figures (for asset metadata, the files next
to the card, and the card itself)."""

from __future__ import annotations

from flip_assets.core.analytics.plots import figure_png, new_figure
from flip_assets.core.analytics.statistics import (
    FUNNEL,
    PAPER_CAPTION_CHARS,
    PAPER_CAPTION_WORDS,
    PAPER_NSFW_SHARE,
    TOTAL,
    DatasetStatistics,
)



def markdown_table(rows: list[dict], columns: list[str] | tuple[str, ...] | None = None) -> str:
    """A GitHub Markdown table; None shows as '-' (a missing file), floats with 4 digits."""
    if not rows:
        return "_(none)_"
    columns = list(columns or rows[0].keys())

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def share_text(share: float) -> str:
    return f"{100 * share:.1f} %"


def tables(stats: DatasetStatistics) -> dict[str, str]:
    """Every statistic as a Markdown table, by name."""
    captions = stats.captions
    safety = stats.safety
    return {
        "funnel": markdown_table(stats.funnel, ["shard", *FUNNEL, "excluded"]),
        "caption_length": markdown_table([
            {"caption": "TEXT (denoised)", "mean chars": captions["mean_chars"], "mean words": captions["mean_words"],
             "median chars": captions["median_chars"], "median words": captions["median_words"]},
            {"caption": "original", "mean chars": captions["mean_original_chars"], "mean words": captions["mean_original_words"]},
            {"caption": "paper (FLIP-80M)", "mean chars": PAPER_CAPTION_CHARS, "mean words": PAPER_CAPTION_WORDS},
        ]),  # fmt: skip
        "keywords": markdown_table(stats.keywords[:50]),
        "faces_per_image": markdown_table(stats.faces_per_image),
        "face_sizes": markdown_table(stats.face_sizes) + "\n\n" + markdown_table([stats.face_size_summary]),
        "image_sizes": markdown_table(stats.image_sizes) + "\n\n" + markdown_table([stats.image_size_summary]),
        "safety": markdown_table([
            {"measure": "NSFW share of candidates (ours)", "value": share_text(safety["nsfw_share"])},
            {"measure": "NSFW share (paper)", "value": share_text(PAPER_NSFW_SHARE)},
            {"measure": "NSFW among released", "value": share_text(safety["released_nsfw_share"])},
            {"measure": "duplicate share of candidates", "value": share_text(safety["duplicate_share"])},
            {"measure": "agreement with the LAION tag (where present)",
             "value": f"{share_text(safety['laion_agreement'])} of {safety['laion_tagged']}"},
        ])  # fmt: skip
        + "\n\nCandidates not released, by reason:\n\n" + markdown_table(stats.exclusions)
        + "\n\nReleased samples by NSFW tag:\n\n" + markdown_table(stats.nsfw_values),
        **{
            f"demographics_{attribute}": markdown_table(rows)
            for attribute, rows in stats.demographics.items()
        },
        "problems": markdown_table(stats.problems) if stats.problems else "none: every shard's files are present",
    }


def _bars(labels, values, title: str, xlabel: str, ylabel: str) -> bytes:
    figure, axes = new_figure()
    axes.bar([str(label) for label in labels], values, color="#4477aa")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.tick_params(axis="x", labelrotation=45)
    return figure_png(figure)


def figures(stats: DatasetStatistics) -> dict[str, bytes]:
    """PNG figures by name: the funnel, caption length, faces per image, face and image size,
    and Figure 6 (age, gender, race of the released faces)."""
    total = next((row for row in stats.funnel if row["shard"] == TOTAL), {})
    out = {
        "funnel": _bars(FUNNEL, [total.get(c) or 0 for c in FUNNEL], "Funnel, all shards", "stage", "samples"),
        "caption_words": _bars(
            [r["words"] for r in stats.caption_words], [r["samples"] for r in stats.caption_words],
            f"Caption length (mean {stats.captions['mean_words']:.1f} words; paper {PAPER_CAPTION_WORDS})",
            "words (40 = 40 or more)", "samples",
        ),  # fmt: skip
        "faces_per_image": _bars(
            [r["faces"] for r in stats.faces_per_image], [r["images"] for r in stats.faces_per_image],
            "Faces per released image", "faces (10 = 10 or more)", "images",
        ),  # fmt: skip
        "face_sizes": _bars(
            [r["side_from"] for r in stats.face_sizes], [r["faces"] for r in stats.face_sizes],
            "Face size", "face side from (px, powers of two)", "faces",
        ),  # fmt: skip
        "image_sizes": _bars(
            [r["side_from"] for r in stats.image_sizes], [r["images"] for r in stats.image_sizes],
            "Image size", "longer side from (px, powers of two)", "images",
        ),  # fmt: skip
    }
    figure, axes = new_figure(12, 4)
    figure.clear()
    for n, attribute in enumerate(("age_group", "gender", "race"), 1):
        axes = figure.add_subplot(1, 3, n)
        rows = stats.demographics.get(attribute, [])
        axes.bar([str(r["value"]) for r in rows], [r["faces"] for r in rows], color="#228833")
        axes.set_title(attribute.replace("_", " "))
        axes.set_ylabel("faces")
        axes.tick_params(axis="x", labelrotation=45)
    figure.suptitle("Released faces (paper Figure 6)")
    out["demographics"] = figure_png(figure)
    return out
