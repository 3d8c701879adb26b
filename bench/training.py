"""Training and evaluation speed of a configuration (default: the CPU one, cpu_mobilenet_v2_minilm).

    python -m bench.training [--pairs 1024] [--steps 20] [--rounds 3] [--config NAME] [--device cuda]

- training samples/s of the asset's loop (contrastive_training.train: schedule, curve, state
  saved every save_every steps) against a bare loop (forward, loss, backward, AdamW step) on
  the same batches from the same initialisation, alternated `rounds` times so both see the
  same machine load; the ratio is asset / bare (target >= 0.9);
- evaluation images/s: encoded JPEG to embedding (decode, resize, frozen stem, trained top),
  and embedding from the cached stems (what a second model costs);
- peak resident memory of the process.
One JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bench import pipeline_resource
from flip_assets.core.training.contrastive_training import amp_context, batch_order, build_optimizer, prepare_inputs, train
from flip_assets.core.training.dual_encoder import build_model, contrastive_loss, load_config, load_tokenizer
from flip_assets.core.evaluation.face_benchmarks import ImageSet, embed_images
from flip_assets.core.training.training_pairs import celeba_pairs


def bare_loop(model, inputs, config, seed: int, device) -> float:
    """Samples/s of the plainest loop over the same batches (the same mixed precision on a GPU)."""
    import torch

    torch.manual_seed(seed)
    model.to(device)
    optimizer, scheduler = build_optimizer(model, config)
    autocast, scaler = amp_context(device)
    image_stems, text_stems, text_mask = (t.to(device) for t in (inputs.image_stems, inputs.text_stems, inputs.text_mask))
    started = time.perf_counter()
    for step in range(config.steps):
        index = batch_order(len(inputs), config.batch_size, seed, step).to(device)
        mask = text_mask[index]
        width = int(mask.sum(1).max())
        with autocast:
            loss = contrastive_loss(
                model.embed_images(image_stems[index]), model.embed_texts(text_stems[index][:, :width], mask[:, :width]), model.logit_scale
            )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
    loss.item()  # waits for the GPU's queued work
    return config.steps * config.batch_size / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--config", default="cpu_mobilenet_v2_minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save-every", type=int, default=0, help="steps between training-state saves (0: steps // 3)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    config = load_config(args.config)
    config = config.scaled(steps=args.steps, warmup_steps=2, save_every=args.save_every or max(1, args.steps // 3))
    pairs = celeba_pairs(Path(pipeline_resource("training").eval_data) / "celeba_attr.parquet", seed=0, max_samples=args.pairs)
    tokenizer = load_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        model = build_model(config, seed=0)
        images, hashes, captions = (pairs[c].to_pylist() for c in ("image", "sha256", "caption"))
        started = time.perf_counter()
        inputs = prepare_inputs(model, tokenizer, images, hashes, captions, cache, device)
        print(json.dumps({"what": "prepare: decode, resize, frozen stems (once per data set)", "pairs": len(pairs), "seconds": round(time.perf_counter() - started, 1)}))  # fmt: skip
        asset, bare = [], []
        for round_ in range(args.rounds):
            run = train(build_model(config, seed=0), inputs, config, 0, device, Path(tmp) / f"state{round_}", log=lambda _: None)
            asset.append(config.steps * config.batch_size / run.train_seconds)
            bare.append(bare_loop(build_model(config, seed=0), inputs, config, 0, device))
        ratios = [a / b for a, b in zip(asset, bare)]
        print(json.dumps({
            "what": "training samples/s", "config": config.name, "device": str(device), "batch": config.batch_size, "steps": config.steps, "save_every": config.save_every,
            "asset_loop": [round(a, 1) for a in asset], "bare_loop": [round(b, 1) for b in bare],
            "ratio_median": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
        }))  # fmt: skip

        evaluated = ImageSet("celeba", "train", images[:512])
        started = time.perf_counter()
        embed_images(model, evaluated, None, device)
        cold = len(evaluated) / (time.perf_counter() - started)
        embed_images(model, evaluated, cache, device)  # fills the stem cache
        started = time.perf_counter()
        embed_images(model, evaluated, cache, device)
        warm = len(evaluated) / (time.perf_counter() - started)
        print(json.dumps({"what": "evaluation images/s", "images": len(evaluated), "from_jpeg": round(cold, 1), "from_cached_stems": round(warm, 1)}))  # fmt: skip
    print(json.dumps({"what": "peak resident memory", "MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
