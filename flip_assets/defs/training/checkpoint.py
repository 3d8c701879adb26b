"""flip_checkpoint: the contrastive dual encoder (paper 4.1), trained on the configured pair
assets, saved in Hugging Face layout; its Parquet output is the training curve."""


import shutil
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.training.contrastive_training import curves_png, image_tensor, prepare_inputs, train
from flip_assets.core.io.devices import torch_device
from flip_assets.core.training.dual_encoder import (
    build_model, checkpoint_model_dir, load_checkpoint, load_tokenizer, save_checkpoint, save_seed_weights, tokenize,
)
from flip_assets.core.io.plots import markdown_image
from flip_assets.defs.asset_keys import FLIP_CHECKPOINT, PAIR_ASSETS
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.storage import FlipStorage
from flip_assets.defs.shared_resources import TrainingResource

# Embeddings of the saved and reloaded model may differ by float rounding only.
ROUND_TRIP_TOLERANCE = 1e-5
ROUND_TRIP_SAMPLES = 32

CHECKS = AssetChecks(
    FLIP_CHECKPOINT,
    Check(
        "loss_decreased", "The mean loss of the last tenth of the steps is below that of the first tenth, and every loss is finite.",
        blocking=True, zero=("non_finite_losses",), report=("first_loss", "last_loss", "steps"),
        passed=lambda f: f["last_loss"] < f["first_loss"],
    ),  # fmt: skip
    Check(
        "checkpoint_round_trip",
        f"The saved checkpoint loads back and gives the trained model's embeddings (images and texts of "
        f"{ROUND_TRIP_SAMPLES} training pairs) within {ROUND_TRIP_TOLERANCE}.",
        blocking=True, report=("max_embedding_difference",), passed=lambda f: f["max_embedding_difference"] <= ROUND_TRIP_TOLERANCE,
    ),  # fmt: skip
    Check(
        "no_image_in_training_and_evaluation",
        "No training image (SHA-256) is in an evaluation file (CelebA test split, FER2013, UTKFace, 300-W).",
        blocking=True, zero=("images_in_evaluation",),
    ),  # fmt: skip
)


def model_dir(flip_storage: FlipStorage) -> Path:
    """Where the checkpoint is written (on an object store: in the working copy)."""
    flip_storage.directory(FLIP_CHECKPOINT)  # the asset's folder, made before the model goes in
    return checkpoint_model_dir(flip_storage.local_home())


def _replace_dir(new: Path, target: Path) -> None:
    """Put a freshly written folder in place of the old one (readers see the old or the new)."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def embedding_difference(model, reloaded, pixels, tokenizer, captions: list[str], device) -> float:
    import torch

    ids, mask = tokenize(tokenizer, captions, model.config.max_text_tokens)
    with torch.inference_mode():
        pairs = [
            (m.encode_images(pixels.to(device)), m.encode_texts(ids.to(device), mask.to(device))) for m in (model, reloaded.to(device))
        ]  # fmt: skip
    return float(max((a - b).abs().max() for a, b in zip(*pairs)))


@asset(
    deps=list(PAIR_ASSETS), kinds={"pytorch", "parquet"}, check_specs=CHECKS.specs, code_version="2",
    automation_condition=REFRESH_ON_CHANGE,
)
def flip_checkpoint(context: AssetExecutionContext, flip_storage: FlipStorage, training: TrainingResource) -> MaterializeResult:
    """The dual encoder of FLIP_TRAIN_CONFIG trained on FLIP_TRAIN_SOURCES with CLIP's symmetric
    contrastive loss; saved in Hugging Face layout with a model card under
    $FLIP_HOME/flip_checkpoint/model. A killed run resumes from its last saved step (on an
    object store, on any machine: the state file is committed at each save)."""
    config, device = training.training_config(), torch_device(training.device)
    sources = training.source_assets()
    pairs = pa.concat_tables([flip_storage.read(name).select(["sha256", "caption", "image"]) for name in sources])
    images, hashes, captions = pairs.column("image").to_pylist(), pairs.column("sha256").to_pylist(), pairs.column("caption").to_pylist()
    model, tokenizer = build_model(config, seed=training.seed), load_tokenizer()
    cache_dir = flip_storage.directory("training_cache")
    inputs = prepare_inputs(model, tokenizer, images, hashes, captions, cache_dir, device)
    state_dir = flip_storage.resume_dir(f"{FLIP_CHECKPOINT}/state")
    run = train(
        model, inputs, config, training.seed, device, state_dir, log=context.log.info, on_save=lambda _: flip_storage.share(state_dir)
    )

    final_loss = run.curve[-1]["loss"]
    card = {"steps": len(run.curve), "sources": ", ".join(f"{n} ({flip_storage.read(n).num_rows} pairs)" for n in sources),
            "final_loss": round(final_loss, 4), "temperature": round(run.curve[-1]["temperature"], 4)}  # fmt: skip
    target = model_dir(flip_storage)
    written = save_checkpoint(
        model, tokenizer, target.with_name("model.new"), card,
        {"seed": training.seed, "seeds": training.seed_list, "sources": sources, "pairs": len(pairs)},
    )  # fmt: skip
    # The same training from the other seeds, for the evaluation's intervals: one published
    # model, the others' trained parameters in its seeds/ folder.
    extra_losses = {}
    for seed in training.seed_list[1:]:
        other = build_model(config, seed=seed)
        other_run = train(other, inputs, config, seed, device, log=context.log.debug)
        extra_losses[seed] = round(other_run.curve[-1]["loss"], 4)
        save_seed_weights(other, written, seed)
    sample = slice(0, ROUND_TRIP_SAMPLES)
    pixels = image_tensor(images[sample], config.image_size)
    difference = embedding_difference(model, load_checkpoint(written)[0], pixels, tokenizer, captions[sample], device)

    path = flip_storage.write(FLIP_CHECKPOINT, None, pa.Table.from_pylist(run.curve))
    facts = storage.query(storage.sql_file("training_curve_checks.sql"), path=str(path))[0]
    pair_paths = [str(flip_storage.path(n)) for n in sources]
    leaks = storage.query(storage.sql_file("training_pairs_checks.sql"), path=pair_paths, eval_glob=str(Path(training.eval_data) / "*.parquet"))  # fmt: skip
    checks = CHECKS.results({**facts, "max_embedding_difference": difference, "images_in_evaluation": leaks[0]["images_in_evaluation"]})
    if all(c.passed for c in checks):
        _replace_dir(written, target)
        flip_storage.discard(state_dir)  # done: a later run trains afresh
    png = curves_png(run.curve, f"{config.name} on {' + '.join(sources)}")
    storage.atomic_write_bytes(flip_storage.path(FLIP_CHECKPOINT).with_name("training_curves.png"), lambda tmp: tmp.write_bytes(png))
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "model": MetadataValue.path(str(target if all(c.passed for c in checks) else written)),
            "config": MetadataValue.json(asdict(config)),
            "sources": ", ".join(sources), "pairs": len(pairs), "steps": len(run.curve), "seed": training.seed,
            "other_seeds_final_loss": MetadataValue.json(extra_losses),
            "resumed_from_step": run.resumed_from_step, "train_seconds": round(run.train_seconds, 1),
            "samples_per_s": round(run.samples_per_s, 1), "final_loss": final_loss, "device": str(device),
            "curves": MetadataValue.md(markdown_image(png, "loss, learning rate and throughput per step")),
        },
        check_results=checks,
    ))  # fmt: skip
