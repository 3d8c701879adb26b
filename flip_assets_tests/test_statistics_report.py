"""Figure 6 style distributions say how many samples stand behind them, and one drawn from
fewer than 30 is marked as too few to read as a distribution (issue 21 item 3)."""

from __future__ import annotations

from flip_assets.core.analytics.dataset_card import dataset_card
from flip_assets.core.analytics.release_quality import measure_quality
from flip_assets.core.analytics.statistics import DatasetStatistics
from flip_assets.core.analytics.statistics_report import MIN_SAMPLES_FOR_DISTRIBUTION, figures, sample_sizes, tables

FEW = "fewer than 30"


def statistics(released: int, faces_by_race: dict[str, int]) -> DatasetStatistics:
    """Statistics of a release of `released` one-face images (the other fields as the asset fills them)."""
    faces = sum(faces_by_race.values())
    return DatasetStatistics(
        shards=["00000"], problems=[],
        funnel=[{"shard": s, "raw": released, "downloaded": released, "face": released, "face_text": released,
                 "denoised": released, "released": released, "excluded": 0} for s in ("00000", "total")],
        captions={"captions": released, "mean_chars": 40.0, "mean_words": 8.0, "median_chars": 40, "median_words": 8,
                  "mean_original_chars": 41.0, "mean_original_words": 8.0},
        caption_words=[{"words": 8, "samples": released}],
        keywords=[{"keyword": "smiling", "samples": released, "share": 1.0}],
        faces_per_image=[{"faces": 1, "images": released}],
        face_sizes=[{"side_from": 64, "faces": faces}],
        face_size_summary={"faces": faces, "mean_side": 70.0, "median_side": 70.0, "mean_area_share": 0.05},
        image_sizes=[{"side_from": 256, "images": released}],
        image_size_summary={"mean_height": 300, "mean_width": 400, "median_height": 300, "median_width": 400, "mean_megapixels": 0.12},
        safety={"nsfw_share": 0.0, "released_nsfw_share": 0.0, "duplicate_share": 0.0, "laion_agreement": 0.0, "laion_tagged": 0},
        exclusions=[], nsfw_values=[{"nsfw": "UNLIKELY", "samples": released}],
        demographics={"age_group": [{"value": "20-29", "faces": faces}], "gender": [{"value": "female", "faces": faces}],
                      "race": [{"value": r, "faces": n} for r, n in faces_by_race.items()], "not_estimated": []},
        race_test_accuracy=0.7,
        quality=measure_quality([], {}, [], {}, {"unchecked": 0, "examples": None}),
    )  # fmt: skip


def test_every_distribution_names_its_sample_size():
    stats = statistics(73, {"Black": 42, "White": 35, "Asian": 20})
    sizes = sample_sizes(stats)
    assert {"caption_words", "keywords", "faces_per_image", "face_sizes", "image_sizes", "age_group", "gender", "race"} <= set(sizes)
    assert sizes["caption_words"] == (73, "captions") and sizes["race"] == (97, "faces")
    shown = tables(stats)
    assert "n = 73 images" in shown["faces_per_image"] and "n = 97 faces" in shown["demographics_race"]
    assert FEW not in "".join(shown.values())
    assert "n = 97 faces" in dataset_card(stats, ["smiling"], {})


def test_a_distribution_of_fewer_than_30_samples_is_marked_not_drawn_as_a_shape():
    stats = statistics(12, {"Black": 7, "White": 5})
    assert MIN_SAMPLES_FOR_DISTRIBUTION == 30
    shown = tables(stats)
    for name in ("caption_length", "keywords", "faces_per_image", "face_sizes", "image_sizes", "demographics_race"):
        assert FEW in shown[name], name
    card = dataset_card(stats, ["smiling"], {})
    assert card.count(FEW) >= 8
    drawn = figures(stats)
    assert {"caption_words", "keywords", "faces_per_image", "face_sizes", "image_sizes", "demographics"} <= set(drawn)


def test_one_small_attribute_is_marked_alone():
    stats = statistics(40, {"Black": 20, "White": 20})
    stats.demographics["gender"] = [{"value": "female", "faces": 10}]
    shown = tables(stats)
    assert FEW in shown["demographics_gender"] and FEW not in shown["demographics_race"]


def test_the_classifier_table_names_the_baseline_it_must_beat():
    stats = statistics(73, {"Black": 42, "White": 35})
    stats.quality["caption_classifier"]["coverage"] = {"labelled": 418, "stale": 0, "positives": 100}
    assert "Baseline to beat (no caption filter: every face-detected sample kept): precision 0.24 [0.20, 0.28]" in tables(stats)["quality_classifier"]
