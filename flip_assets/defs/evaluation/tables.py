"""flip_eval_tables: the paper's downstream tables (section 4.2: zero-shot, linear probe, face
alignment as Table 4's 1 / 10 / 100 % protocol, Table 9's quality columns) for the trained model
over its seeds, against chance, the majority class, raw pixels and the initial model, each gain
with its paired bootstrap interval (core/evaluation/face_benchmarks.py, uncertainty.py)."""


from pathlib import Path

import pyarrow as pa
from dagster import AssetCheckSeverity, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.evaluation.ablation import median_perplexity
from flip_assets.core.evaluation.eval_tables import bars_png, by_model, compare, gain_facts, long_rows, markdown
from flip_assets.core.evaluation.face_benchmarks import (
    TABLES, UNSEEN_ATTRIBUTES, EvalSuite, baselines, evaluate, fitted_hashes, load_suite,
)
from flip_assets.core.io import storage
from flip_assets.core.io.devices import torch_device
from flip_assets.core.io.plots import markdown_image
from flip_assets.core.training.dual_encoder import build_model, checkpoint_info, load_seed_models, load_tokenizer
from flip_assets.core.training.training_pairs import captions_naming
from flip_assets.defs.asset_keys import CELEBA_CAPTION_PAIRS, FLIP_CHECKPOINT, FLIP_EVAL_TABLES, PAIR_ASSETS
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.evaluation.resources import EvaluationResource
from flip_assets.defs.shared_resources import PerplexityResource, TrainingResource
from flip_assets.defs.storage import FlipStorage

TITLES = {
    "zero_shot": "Zero-shot (paper section 4.2)", "linear_probe": "Linear probe (paper section 4.2)",
    "face_alignment": "Face alignment, 300-W, 1 / 10 / 100 % of train (paper Table 4)",
    "quality": "Training data quality (paper Table 9)",
}  # fmt: skip

CHECKS = AssetChecks(
    FLIP_EVAL_TABLES,
    Check(
        "only_test_splits_scored",
        "Every scored set is a test split, and no test image (SHA-256) is among the images any probe or landmark head "
        "read to fit or to choose its regularisation.",
        blocking=True, zero=("scored_splits_not_test", "test_images_in_fitting_splits"),
        metadata=lambda f: {"fits_reading_test_images": MetadataValue.json(f["fits_reading_test_images"])},
    ),  # fmt: skip
    Check(
        "no_image_in_training_and_evaluation",
        "No image of the checkpoint's training pairs (SHA-256) is among the evaluation images.",
        blocking=True, zero=("training_images_in_evaluation",),
    ),  # fmt: skip
    Check(
        "trained_beats_best_baseline",
        "On every task the trained model's gain over the best baseline (chance, majority class, raw pixels, the "
        "initial model; mean shape for landmarks) has a 95 % paired bootstrap interval (items by cluster, seeds) "
        "above zero. A warning: the tables report every task, including those where nothing is gained.",
        zero=("tasks_without_gain",), report=("tasks",), severity=AssetCheckSeverity.WARN,
        metadata=lambda f: {"intervals": MetadataValue.json(f["intervals"])},
    ),  # fmt: skip
)


def split_facts(suite: EvalSuite, fits: dict[str, set[str]], training_hashes: set[str]) -> dict:
    """The facts CHECKS judge: which splits were scored, and overlaps by SHA-256 between the
    scored images and what each fit read (face_benchmarks.fitted_hashes) or training saw."""
    scored = {h for s in suite.scored for h in s.hashes}
    reading = {fit: len(hashes & scored) for fit, hashes in fits.items() if hashes & scored}
    evaluated = {h for s in suite.sets for h in s.hashes}
    return {
        "scored_splits_not_test": sum(s.split != "test" for s in suite.scored),
        "test_images_in_fitting_splits": len(scored & set().union(*fits.values())), "fits_reading_test_images": reading,
        "training_images_in_evaluation": len(evaluated & training_hashes),
    }  # fmt: skip


def quality_rows(pairs: pa.Table, source: str, perplexity, samples: int) -> list[dict]:
    """Table 9's perplexity column for a sample of one source's captions; none for a source
    without pairs (a release the classifier kept nothing of). Its CLIP score is flip_ablation's,
    from a scorer trained on none of the scored pairs (a model scoring its own training pairs
    ranks sources by what it memorised)."""
    captions = pairs.slice(0, samples).column("caption").to_pylist()
    if not captions:
        return []
    value, scored = median_perplexity(captions, perplexity)
    return [{"task": source, "metric": "perplexity", "value": value, "test_images": scored}]


@asset(
    deps=[FLIP_CHECKPOINT, *PAIR_ASSETS], kinds={"pytorch", "parquet"}, check_specs=CHECKS.specs,
    code_version="2", automation_condition=REFRESH_ON_CHANGE,
)
def flip_eval_tables(
    context: AssetExecutionContext,
    flip_storage: FlipStorage,
    training: TrainingResource,
    evaluation: EvaluationResource,
    perplexity: PerplexityResource,
) -> MaterializeResult:
    """Zero-shot (CelebA's unseen attributes, the seen ones as the in-distribution row, FER2013),
    ridge probes (UTKFace race, gender, age group; FER2013), 300-W landmark heads on the spatial
    feature map from 1/10/100 % of its train part, for the checkpoint's seeds and the initial
    model of each seed, against chance, majority class and raw pixels; per task the trained
    model's gain over the best baseline with its interval. Table 9's CLIP score and perplexity
    per training source. Only test splits are scored (see core/evaluation/face_benchmarks.py)."""
    device = torch_device(training.device)
    directory = storage.require_file(flip_storage.published_checkpoint_dir() / "config.json").parent
    config, info = checkpoint_info(directory)
    trained_models, tokenizer = load_seed_models(directory), load_tokenizer(directory)
    suite = load_suite(Path(training.eval_data), evaluation.test_images, evaluation.train_images, training.seed)
    cache_dir = flip_storage.directory("training_cache")
    scores = baselines(suite, training.seed)
    rows = long_rows(scores, split="test", seed=None)
    for i, (seed, trained) in enumerate(sorted(trained_models.items())):
        context.log.info(f"evaluating the trained and initial models of seed {seed}")
        # The initial tower is the pretrained one whatever the seed: only its zero-shot (its new
        # projection heads) differs between seeds.
        init_tables = TABLES if i == 0 else ("zero_shot",)
        for name, model, tables in (("trained", trained, TABLES), ("init", build_model(config, seed=seed), init_tables)):
            results = evaluate(model.to(device), tokenizer, suite, cache_dir, device, training.seed, name, tables)
            scores += results
            rows += long_rows(results, split="test", seed=seed)
    lines = compare(scores, "trained", evaluation.resamples, training.seed)

    sources, empty_sources = [], []
    for source in [n for n in PAIR_ASSETS if flip_storage.path(n).is_file()]:
        pairs = flip_storage.read(source)
        (sources if pairs.num_rows else empty_sources).append(source)
        quality = quality_rows(pairs, source, perplexity.get_scorer(), evaluation.quality_samples)
        for name in ("init", "trained"):
            rows += long_rows({"quality": quality}, name, split="train", seed=info["seed"])
    # How often the other training sources' captions name an attribute scored as unseen.
    unseen_mentions = {
        source: captions_naming(flip_storage.read(source).column("caption").to_pylist(), UNSEEN_ATTRIBUTES)
        for source in info["sources"] if source != CELEBA_CAPTION_PAIRS
    }  # fmt: skip
    training_hashes = {h for n in info["sources"] for h in flip_storage.read(n).column("sha256").to_pylist()}
    flip_storage.write(FLIP_EVAL_TABLES, None, pa.Table.from_pylist(rows))

    metadata = {}
    for table in TABLES:
        shown = [{k: v for k, v in line.items() if k not in ("table", "low", "high")} for line in lines if line["table"] == table]
        models = [k for k in shown[0] if k not in ("task", "metric", "test_items", "seeds", "best_baseline", "gain", "interval", "verdict")] if shown else []  # fmt: skip
        png = bars_png(shown, models, TITLES[table])
        storage.atomic_write_bytes(flip_storage.path(FLIP_EVAL_TABLES).with_name(f"{table}.png"), lambda tmp, png=png: tmp.write_bytes(png))
        metadata[table] = MetadataValue.md(f"**{TITLES[table]}**\n\n" + markdown(shown) + "\n\n" + markdown_image(png, TITLES[table]))
    attributes = []
    for (table, task, metric), models in by_model(scores).items():
        if "columns" in models["trained"].extra:
            columns = {name: s.per_column() for name, s in models.items() if name in ("init", "trained")}
            attributes += [{"attribute": a, "row": "unseen" if a in UNSEEN_ATTRIBUTES else "seen", **{m: round(v[i], 3) for m, v in columns.items()}} for i, a in enumerate(models["trained"].extra["columns"])]  # fmt: skip
    quality = [{"source": r["task"], "metric": r["metric"], "model": r["model"], "value": round(r["value"], 3)} for r in rows if r["table"] == "quality"]  # fmt: skip
    facts = {**split_facts(suite, fitted_hashes(suite, training.seed), training_hashes), **gain_facts(lines)}
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            **metadata, "celeba_attributes": MetadataValue.md("Balanced accuracy per attribute (chance and majority: 0.5)\n\n" + markdown(attributes)),
            "quality": MetadataValue.md(f"**{TITLES['quality']}**\n\n" + markdown(quality)),
            "checkpoint": MetadataValue.path(str(directory)), "trained_on": ", ".join(info["sources"]),
            "seeds": MetadataValue.json(sorted(trained_models)), "bootstrap_resamples": evaluation.resamples,
            "unseen_attributes": ", ".join(UNSEEN_ATTRIBUTES),
            "captions_naming_unseen_attributes": MetadataValue.json(unseen_mentions),
            "scored_images": MetadataValue.json({s.name: len(s) for s in suite.scored}),
            "fitting_images_dropped_as_test_duplicates": MetadataValue.json(suite.removed_from_fitting), "quality_sources": ", ".join(sources),
            "quality_sources_without_pairs": ", ".join(empty_sources),
        },
        check_results=CHECKS.results(facts),
    ))  # fmt: skip
