"""Every asset's key, written once: the wiring names another asset (deps, reads, checks,
step keys) by these constants, so that one domain needs no import of another's package to
depend on its assets. An asset's function is named as its key (test_layout.py checks both).
"""

# curation/
RAW_SHARDS = "raw_shards"
FACE_DETECTIONS = "face_detections"
FACE_KEYWORDS = "face_keywords"
CAPTION_CLASSIFIER_DATASET = "caption_classifier_dataset"
CAPTION_CLASSIFIER = "caption_classifier"
FACE_DESCRIPTION_TEST = "face_description_test"
FACE_TEXT_PAIRS = "face_text_pairs"
DENOISED_CAPTIONS = "denoised_captions"
DENOISING_EVAL_SET = "denoising_eval_set"
DENOISING_EVALUATION = "denoising_evaluation"
AIGC_SAMPLES = "aigc_samples"

# release/
RELEASE_CANDIDATES = "release_candidates"
RELEASE_INDEX = "release_index"
FLIP_RELEASE = "flip_release"
RELEASE_EXCLUSIONS = "release_exclusions"
FLIP_RELEASE_AIGC = "flip_release_aigc"

# analytics/
RACE_CLASSIFIER = "race_classifier"
RELEASED_FACE_DEMOGRAPHICS = "released_face_demographics"
RELEASE_STATISTICS_PARTIAL = "release_statistics_partial"
DATASET_STATISTICS = "dataset_statistics"
DATASET_CARD = "dataset_card"

# training/
CELEBA_CAPTION_PAIRS = "celeba_caption_pairs"
RAW_SHARD_PAIRS = "raw_shard_pairs"
RELEASED_PAIRS = "released_pairs"
FLIP_CHECKPOINT = "flip_checkpoint"

# evaluation/
FLIP_EVAL_TABLES = "flip_eval_tables"
FLIP_ABLATION = "flip_ablation"

# The training sources: an asset of face-text pairs each; a source spec joins them with "+".
PAIR_ASSETS = (CELEBA_CAPTION_PAIRS, RELEASED_PAIRS, RAW_SHARD_PAIRS)
