"""The dataset statistics as Markdown tables and PNG figures (for asset metadata, the files next
to the card, and the card itself)."""

from __future__ import annotations

from flip_assets.core.io.plots import figure_png, new_figure
from flip_assets.core.analytics.release_quality import wilson_interval
from flip_assets.core.analytics.statistics import (
    FUNNEL,
    PAPER_CAPTION_CHARS,
    PAPER_CAPTION_WORDS,
    PAPER_NSFW_SHARE,
    TOTAL,
    DatasetStatistics,
)

# A distribution drawn from fewer samples than this is shown as its counts and marked: a handful
# of samples has no shape worth reading.
MIN_SAMPLES_FOR_DISTRIBUTION = 30
FIGURE6_ATTRIBUTES = ("age_group", "gender", "race")


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


def sample_sizes(stats: DatasetStatistics) -> dict[str, tuple[int, str]]:
    """How many samples stand behind each Figure 6 style distribution, and of what."""
    released = stats.captions["captions"] or 0
    return {
        "caption_words": (released, "captions"),
        "keywords": (released, "captions"),
        "faces_per_image": (sum(r["images"] for r in stats.faces_per_image), "images"),
        "face_sizes": (stats.face_size_summary["faces"] or 0, "faces"),
        "image_sizes": (sum(r["images"] for r in stats.image_sizes), "images"),
        **{a: (sum(r["faces"] for r in stats.demographics.get(a, [])), "faces") for a in FIGURE6_ATTRIBUTES},
    }


def sample_note(size: tuple[int, str]) -> str:
    n, unit = size
    if n < MIN_SAMPLES_FOR_DISTRIBUTION:
        return f"n = {n} {unit}, fewer than {MIN_SAMPLES_FOR_DISTRIBUTION}: counts only, too few to read as a distribution"
    return f"n = {n} {unit}"


def _noted(size: tuple[int, str], table: str) -> str:
    return f"_{sample_note(size)}_\n\n{table}"


def tables(stats: DatasetStatistics) -> dict[str, str]:
    """Every statistic as a Markdown table, by name; each distribution opens with its sample size."""
    captions = stats.captions
    safety = stats.safety
    sizes = sample_sizes(stats)
    return {
        "funnel": markdown_table(stats.funnel, ["shard", *FUNNEL, "excluded"]),
        "sample_sizes": markdown_table([
            {"distribution": name, "samples": n, "of": unit, "readable as a distribution": n >= MIN_SAMPLES_FOR_DISTRIBUTION}
            for name, (n, unit) in sizes.items()
        ]),  # fmt: skip
        "caption_length": _noted(sizes["caption_words"], markdown_table([
            {"caption": "TEXT (denoised)", "mean chars": captions["mean_chars"], "mean words": captions["mean_words"],
             "median chars": captions["median_chars"], "median words": captions["median_words"]},
            {"caption": "original", "mean chars": captions["mean_original_chars"], "mean words": captions["mean_original_words"]},
            {"caption": "paper (FLIP-80M)", "mean chars": PAPER_CAPTION_CHARS, "mean words": PAPER_CAPTION_WORDS},
        ])),  # fmt: skip
        "keywords": _noted(sizes["keywords"], markdown_table(stats.keywords[:50])),
        "faces_per_image": _noted(sizes["faces_per_image"], markdown_table(stats.faces_per_image)),
        "face_sizes": _noted(sizes["face_sizes"], markdown_table(stats.face_sizes) + "\n\n" + markdown_table([stats.face_size_summary])),
        "image_sizes": _noted(sizes["image_sizes"], markdown_table(stats.image_sizes) + "\n\n" + markdown_table([stats.image_size_summary])),
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
            f"demographics_{attribute}": _noted(sizes[attribute], markdown_table(rows)) if attribute in sizes else markdown_table(rows)
            for attribute, rows in stats.demographics.items()
        },
        **quality_tables(stats.quality),
        "problems": markdown_table(stats.problems) if stats.problems else "none: every shard's files are present",
    }


def _share_interval(value: float | None, low: float | None, high: float | None) -> str:
    return "-" if value is None else f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _base_rate(positives: int, labelled: int) -> tuple[float | None, float | None, float | None]:
    return (positives / labelled if labelled else None, *wilson_interval(positives, labelled))


def quality_tables(quality: dict) -> dict[str, str]:
    """The measures by looking as tables: the caption classifier on the labelled face-detected
    population (as run, then along a threshold sweep) and the release precision with its failure kinds."""
    classifier, release = quality["caption_classifier"], quality["release_precision"]
    coverage = classifier["coverage"]
    points = [
        {"threshold": "as run" if p["threshold"] is None else p["threshold"], "kept": p["kept"],
         "precision [95 % CI]": _share_interval(p["precision"], p["precision_low"], p["precision_high"]),
         "recall [95 % CI]": _share_interval(p["recall"], p["recall_low"], p["recall_high"])}
        for p in classifier["points"]
    ]  # fmt: skip
    kinds = [{"failure kind": kind, "pairs": n} for kind, n in release["failure_kinds"].items()]
    better = classifier["better_thresholds"]
    rule = (
        "The threshold rule (docs/release-quality.md) prefers: " + "; ".join(f"{b['threshold']} ({b['because']})" for b in better)
        if better else "The threshold rule (docs/release-quality.md) keeps the threshold: no other point is better beyond its interval."
    )  # fmt: skip
    return {
        "quality_classifier": (
            f"_{coverage['labelled']} labelled face-detected samples ({coverage['positives']} face captions); "
            f"{coverage['stale']} labels no longer match their sample's caption_\n\n" + markdown_table(points)
            + "\n\n" + rule
            + "\n\nBaseline to beat (no caption filter: every face-detected sample kept): precision "
            + _share_interval(*_base_rate(coverage["positives"], coverage["labelled"])) + "."
        ),
        "quality_release": (
            f"_{release['checked']} of {release['released']} released pairs checked by looking; "
            f"{release['unchecked']} without a verdict for their text_\n\n"
            + markdown_table([{"measure": "release precision [95 % CI]",
                               "value": _share_interval(release["precision"], release["precision_low"], release["precision_high"])},
                              {"measure": "pairs judged good", "value": f"{release['good']} of {release['checked']}"}])
            + "\n\n" + markdown_table(kinds)
        ),
    }  # fmt: skip


def _draw_bars(axes, labels, values, title: str, size: tuple[int, str] | None, color: str) -> None:
    """Bars titled with their sample size (None: counts that are no distribution, the funnel);
    under MIN_SAMPLES_FOR_DISTRIBUTION grey, hatched and captioned as counts, so nobody reads a
    shape into them."""
    if size is None:
        axes.bar([str(label) for label in labels], values, color=color)
        axes.set_title(title)
        axes.tick_params(axis="x", labelrotation=45)
        return
    few = size[0] < MIN_SAMPLES_FOR_DISTRIBUTION
    axes.bar([str(label) for label in labels], values, color="#bbbbbb" if few else color, hatch="//" if few else None)
    axes.set_title(f"{title}\n{sample_note(size) if not few else f'n = {size[0]} {size[1]}: too few (< {MIN_SAMPLES_FOR_DISTRIBUTION})'}")
    if few:
        axes.text(0.5, 0.5, "counts only,\nnot a distribution", transform=axes.transAxes, ha="center", va="center",
                  fontsize=14, color="#aa3377", alpha=0.8)  # fmt: skip
    axes.tick_params(axis="x", labelrotation=45)


def _bars(labels, values, title: str, xlabel: str, ylabel: str, size: tuple[int, str] | None) -> bytes:
    figure, axes = new_figure()
    _draw_bars(axes, labels, values, title, size, "#4477aa")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return figure_png(figure)


def figures(stats: DatasetStatistics) -> dict[str, bytes]:
    """PNG figures by name: the funnel, caption length, faces per image, face and image size,
    and Figure 6 (age, gender, race of the released faces)."""
    total = next((row for row in stats.funnel if row["shard"] == TOTAL), {})
    sizes = sample_sizes(stats)
    out = {
        "funnel": _bars(FUNNEL, [total.get(c) or 0 for c in FUNNEL], "Funnel, all shards", "stage", "samples", None),
        **{
            name: _bars([r[x] for r in rows], [r[y] for r in rows], title, xlabel, y, sizes[name])
            for name, rows, x, y, title, xlabel in (
                ("caption_words", stats.caption_words, "words", "samples",
                 f"Caption length (mean {stats.captions['mean_words']:.1f} words; paper {PAPER_CAPTION_WORDS})", "words (40 = 40 or more)"),
                ("keywords", stats.keywords[:20], "keyword", "samples", "Face keywords in released captions (top 20)", "keyword"),
                ("faces_per_image", stats.faces_per_image, "faces", "images", "Faces per released image", "faces (10 = 10 or more)"),
                ("face_sizes", stats.face_sizes, "side_from", "faces", "Face size", "face side from (px, powers of two)"),
                ("image_sizes", stats.image_sizes, "side_from", "images", "Image size", "longer side from (px, powers of two)"),
            )
        },  # fmt: skip
    }
    figure, axes = new_figure(12, 4)
    figure.clear()
    for n, attribute in enumerate(FIGURE6_ATTRIBUTES, 1):
        axes = figure.add_subplot(1, 3, n)
        rows = stats.demographics.get(attribute, [])
        _draw_bars(axes, [r["value"] for r in rows], [r["faces"] for r in rows], attribute.replace("_", " "), sizes[attribute], "#228833")
        axes.set_ylabel("faces")
    figure.suptitle("Released faces (paper Figure 6)")
    out["demographics"] = figure_png(figure)
    return out
