"""flip_eval_tables: the paper's downstream tables (zero-shot, linear probe, face alignment,
Table 9's quality columns) for the initial and the trained model."""


from pathlib import Path

import numpy as np
import pyarrow as pa
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.io.devices import torch_device
from flip_assets.core.training.dual_encoder import build_model, checkpoint_info, load_checkpoint
from flip_assets.core.evaluation.eval_tables import TABLES, bars_png, long_rows, markdown, side_by_side
from flip_assets.core.evaluation.face_benchmarks import EvalSuite, ImageSet, embed_images, embed_texts, evaluate, load_suite
from flip_assets.core.io.plots import markdown_image
from flip_assets.defs.asset_keys import FLIP_CHECKPOINT, FLIP_EVAL_TABLES, PAIR_ASSETS
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.evaluation.resources import EvaluationResource
from flip_assets.defs.storage import FlipStorage
from flip_assets.defs.shared_resources import PerplexityResource, TrainingResource

MODELS = ["init", "trained"]
TITLES = {
    "zero_shot": "Zero-shot (paper Tables 4, 5)", "linear_probe": "Linear probe (paper Table 6)",
    "face_alignment": "Face alignment, 300-W (paper Table 7)", "quality": "Training data quality (paper Table 9)",
}  # fmt: skip

CHECKS = AssetChecks(
    FLIP_EVAL_TABLES,
    Check(
        "only_test_splits_scored",
        "Every scored set is a test split, and no test image (SHA-256) is in a split that fits a probe or landmark head.",
        blocking=True, zero=("scored_splits_not_test", "test_images_in_fitting_splits"),
    ),  # fmt: skip
    Check(
        "no_image_in_training_and_evaluation",
        "No image of the checkpoint's training pairs (SHA-256) is among the evaluation images.",
        blocking=True, zero=("training_images_in_evaluation",),
    ),  # fmt: skip
)


def split_facts(suite: EvalSuite, training_hashes: set[str]) -> dict:
    """The facts CHECKS judge: which splits were scored, and overlaps by SHA-256."""
    scored = {h for s in suite.scored for h in s.hashes}
    scored_sets = {id(s) for s in suite.scored}
    fitting = {h for s in suite.sets if id(s) not in scored_sets for h in s.hashes}
    return {
        "scored_splits_not_test": sum(s.split != "test" for s in suite.scored),
        "test_images_in_fitting_splits": len(scored & fitting),
        "training_images_in_evaluation": len((scored | fitting) & training_hashes),
    }


def quality_rows(model, tokenizer, pairs: pa.Table, source: str, perplexity, samples: int, device) -> list[dict]:
    """Table 9's automatic columns for a sample of one source's pairs: CLIP score (100 x cosine of
    image and caption under the model, at least 0) and the captions' perplexity; none for a
    source without pairs (a release the classifier kept nothing of)."""
    pairs = pairs.slice(0, samples)
    if not pairs.num_rows:
        return []
    captions = pairs.column("caption").to_pylist()
    images = embed_images(model, ImageSet(source, "train", pairs.column("image").to_pylist()), None, device)
    texts = embed_texts(model, tokenizer, captions, device)
    clip_score = float(np.mean(np.maximum((images * texts).sum(1), 0)) * 100)
    scores = [p for p in perplexity.score_many(captions) if p is not None]
    return [
        {"task": source, "metric": "CLIP score", "value": clip_score, "test_images": len(captions)},
        {"task": source, "metric": "perplexity", "value": float(np.median(scores)) if scores else float("nan"), "test_images": len(scores)},
    ]


@asset(
    deps=[FLIP_CHECKPOINT, *PAIR_ASSETS], kinds={"pytorch", "parquet"}, check_specs=CHECKS.specs,
    code_version="1", automation_condition=REFRESH_ON_CHANGE,
)
def flip_eval_tables(
    context: AssetExecutionContext,
    flip_storage: FlipStorage,
    training: TrainingResource,
    evaluation: EvaluationResource,
    perplexity: PerplexityResource,
) -> MaterializeResult:
    """Zero-shot (CelebA 40 attributes, FER2013), linear probes (UTKFace race, gender, age group;
    FER2013), 300-W landmarks from 1/10/100 % of its train part, and Table 9's CLIP score and
    perplexity per training source: the model before training (the same initialisation) and
    after. Only test splits are scored (see core/evaluation/face_benchmarks.py)."""
    device = torch_device(training.device)
    directory = storage.require_file(flip_storage.published_checkpoint_dir() / "config.json").parent
    config, info = checkpoint_info(directory)
    trained, tokenizer = load_checkpoint(directory)
    models = {"init": build_model(config, seed=info["seed"]).to(device), "trained": trained.to(device)}
    suite = load_suite(Path(training.eval_data), evaluation.test_images, evaluation.train_images, training.seed)
    cache_dir = flip_storage.directory("training_cache")
    rows, attributes = [], {}
    for name, model in models.items():
        context.log.info(f"evaluating the {name} model")
        results = evaluate(model, tokenizer, suite, cache_dir, device, training.seed)
        rows += long_rows(results, name, split="test")
        attributes[name] = results["celeba_attributes"]
    sources, empty_sources = [], []
    for source in [n for n in PAIR_ASSETS if flip_storage.path(n).is_file()]:
        pairs = flip_storage.read(source)
        (sources if pairs.num_rows else empty_sources).append(source)
        for name, model in models.items():
            quality = quality_rows(model, tokenizer, pairs, source, perplexity.get_scorer(), evaluation.quality_samples, device)
            rows += long_rows({"quality": quality}, name, split="train")
    training_hashes = {h for n in info["sources"] for h in flip_storage.read(n).column("sha256").to_pylist()}
    path = flip_storage.write(FLIP_EVAL_TABLES, None, pa.Table.from_pylist(rows))
    metadata = {}
    for table in TABLES:
        lines = side_by_side(rows, table, MODELS)
        png = bars_png(lines, MODELS, TITLES[table])
        storage.atomic_write_bytes(flip_storage.path(FLIP_EVAL_TABLES).with_name(f"{table}.png"), lambda tmp, png=png: tmp.write_bytes(png))
        metadata[table] = MetadataValue.md(markdown(lines) + "\n\n" + markdown_image(png, TITLES[table]))
    per_attribute = [
        {"attribute": a["attribute"], "majority": round(a["majority_accuracy"], 3), **{m: round(attributes[m][i]["accuracy"], 3) for m in MODELS}}
        for i, a in enumerate(attributes["trained"])
    ]  # fmt: skip
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            **metadata, "celeba_attributes": MetadataValue.md(markdown(per_attribute)),
            "checkpoint": MetadataValue.path(str(directory)), "trained_on": ", ".join(info["sources"]),
            "scored_images": MetadataValue.json({s.name: len(s) for s in suite.scored}),
            "fitting_images_dropped_as_test_duplicates": MetadataValue.json(suite.removed_from_fitting), "quality_sources": ", ".join(sources),
            "quality_sources_without_pairs": ", ".join(empty_sources),
        },
        check_results=CHECKS.results(split_facts(suite, training_hashes)),
    ))  # fmt: skip
