"""Contrastive training of a dual encoder (dual_encoder.py): inputs prepared once, a loop that
resumes after a kill, and its curves.

Speed on a CPU comes from doing each thing once: images are decoded and resized once into one
uint8 tensor, the frozen stems of both towers run once over a data set, and their outputs are
cached on disk as one tensor file per data set (keyed by the data and the stem), so later runs
(the ablation's sources and seeds, the evaluation of each model) only run the trained tops.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from flip_assets.core.training.dual_encoder import ModelConfig, contrastive_loss, tokenize
from flip_assets.core.io.storage import atomic_write_bytes

STATE_FILE = "training_state.pt"
STEM_BATCH = 256


def decode_square(data: bytes, size: int):
    """RGB uint8 (3, size, size): the shorter side resized to size, then the centre cropped."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        left, top = (width - size) // 2, (height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size))).transpose(2, 0, 1).copy()


def digest(*parts) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
    return hasher.hexdigest()[:20]


def _cached(path: Path | None, build: Callable[[], dict]) -> dict:
    import torch

    if path is not None and path.is_file():
        return torch.load(path, weights_only=True)
    value = build()
    if path is not None:
        atomic_write_bytes(path, lambda tmp: torch.save(value, tmp))
    return value


def image_tensor(images: list[bytes], size: int):
    """All images decoded once into uint8 (N, 3, size, size). Not kept on disk: the frozen
    stem's outputs over them are (image_stems), and only they are read again."""
    import numpy as np
    import torch

    return torch.from_numpy(np.stack([decode_square(b, size) for b in images]))


def stem_key(config: ModelConfig) -> dict:
    """What the frozen stems' outputs depend on (weights are the published ones: named by config)."""
    return {k: getattr(config, k) for k in ("architecture", "image_size", "max_text_tokens", "image_frozen_blocks", "text_trainable_layers")}


def image_stems(model, images: list[bytes], hashes: list[str], cache_dir: Path | None, device):
    """The frozen image stem over every image (decoded once), in chunks; cached by the images'
    SHA-256s and the stem."""
    import torch

    def build():
        pixels = image_tensor(images, model.config.image_size)
        with torch.inference_mode():
            chunks = [model.image_stem(pixels[i : i + STEM_BATCH].to(device)).cpu() for i in range(0, len(pixels), STEM_BATCH)]
        stems = torch.cat(chunks) if chunks else pixels[:0]
        return {"stems": stems.half() if stems.is_floating_point() else stems}

    path = cache_dir / f"image_stems-{digest(stem_key(model.config), hashes)}.pt" if cache_dir else None
    return _cached(path, build)["stems"]


def text_stems(model, tokenizer, texts: list[str], cache_dir: Path | None, device):
    """(stems, mask) of the frozen text stem over every text, padded to max_text_tokens (cached)."""
    import torch

    def build():
        ids, mask = tokenize(tokenizer, texts, model.config.max_text_tokens)
        with torch.inference_mode():
            chunks = [model.text_stem(ids[i : i + STEM_BATCH].to(device), mask[i : i + STEM_BATCH].to(device))[0].cpu() for i in range(0, len(ids), STEM_BATCH)]  # fmt: skip
        stems = torch.cat(chunks)
        return {"stems": stems.half() if stems.is_floating_point() else stems, "mask": mask}

    path = cache_dir / f"text_stems-{digest(stem_key(model.config), texts)}.pt" if cache_dir else None
    cached = _cached(path, build)
    return cached["stems"], cached["mask"]


@dataclass
class TrainingInputs:
    """What the loop reads: stems of the images and texts of matching pairs, row i with row i."""

    image_stems: object
    text_stems: object
    text_mask: object
    fingerprint: str

    def __len__(self) -> int:
        return len(self.image_stems)


def prepare_inputs(model, tokenizer, images: list[bytes], hashes: list[str], captions: list[str], cache_dir: Path | None, device) -> TrainingInputs:
    stems = image_stems(model, images, hashes, cache_dir, device)
    texts, mask = text_stems(model, tokenizer, captions, cache_dir, device)
    return TrainingInputs(stems, texts, mask, digest(stem_key(model.config), hashes, captions))


def batch_order(size: int, batch_size: int, seed: int, step: int):
    """The sample indices of one step: a fresh permutation per epoch, seeded by (seed, epoch),
    so a resumed run sees exactly the batches an uninterrupted one would."""
    import torch

    per_epoch = max(1, size // batch_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    permutation = torch.randperm(size, generator=generator)
    return permutation[position * batch_size : (position + 1) * batch_size]


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@dataclass
class TrainingRun:
    curve: list[dict] = field(default_factory=list)
    resumed_from_step: int = 0
    train_seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        timed = [row["samples_per_s"] for row in self.curve[1:]] or [row["samples_per_s"] for row in self.curve]
        return float(sum(timed) / len(timed)) if timed else 0.0


def amp_context(device):
    """Mixed precision where it pays: bf16 (else fp16) autocast on CUDA; full precision on CPU."""
    import contextlib

    import torch

    if device.type != "cuda":
        return contextlib.nullcontext(), None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def build_optimizer(model, config: ModelConfig):
    import torch

    towers, heads = model.trainable_groups()
    no_decay = [p for p in heads if p.ndim == 0]  # the temperature
    decayed_heads = [p for p in heads if p.ndim > 0]
    groups = [
        {"params": towers, "lr": config.tower_lr, "name": "towers"},
        {"params": decayed_heads, "lr": config.head_lr, "name": "heads"},
        {"params": no_decay, "lr": config.head_lr, "weight_decay": 0.0, "name": "temperature"},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], betas=(0.9, 0.999), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps))
    return optimizer, scheduler


def train(
    model,
    inputs: TrainingInputs,
    config: ModelConfig,
    seed: int,
    device,
    state_dir: Path | None = None,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    on_save: Callable[[Path], None] | None = None,
) -> TrainingRun:
    """config.steps steps of the contrastive loss. With state_dir, the trained parameters,
    optimizer, schedule and curve are saved every config.save_every steps and at the end, and a
    run whose state (same data, config and seed) is there resumes from it; on_save(state file)
    follows each save (to copy it elsewhere). stop_after ends the run early after that many
    steps (to test resuming)."""
    import torch

    torch.manual_seed(seed)
    model.to(device).eval()  # frozen BatchNorm statistics; the tops have no dropout in eval mode
    optimizer, scheduler = build_optimizer(model, config)
    autocast, scaler = amp_context(device)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fingerprint = digest(asdict(config), inputs.fingerprint, seed)
    state_path = state_dir / STATE_FILE if state_dir else None
    run = TrainingRun()
    start = 0
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=False)
        if state["fingerprint"] == fingerprint:
            with torch.no_grad():
                for name, value in state["trained"].items():
                    trained[name].copy_(value)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start, run.curve, run.resumed_from_step = state["step"], state["curve"], state["step"]
            log(f"resuming from step {start} ({state_path})")
        else:
            log(f"{state_path} is of another run (config, data or seed changed): starting afresh")

    def save(step: int) -> None:
        if state_path is None:
            return
        state = {
            "fingerprint": fingerprint, "step": step, "curve": run.curve, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "trained": {n: p.detach().cpu() for n, p in trained.items()},
        }  # fmt: skip
        atomic_write_bytes(state_path, lambda tmp: torch.save(state, tmp))
        if on_save is not None:
            on_save(state_path)

    image_stems, text_stems, mask = (t.to(device) for t in (inputs.image_stems, inputs.text_stems, inputs.text_mask))
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    began = time.perf_counter()
    for step in range(start, end):
        tick = time.perf_counter()
        index = batch_order(len(inputs), config.batch_size, seed, step).to(device)
        batch_mask = mask[index]
        width = int(batch_mask.sum(1).max())  # drop the columns that are padding in every row
        with autocast:
            image = model.embed_images(image_stems[index])
            text = model.embed_texts(text_stems[index][:, :width], batch_mask[:, :width])
            loss = contrastive_loss(image, text, model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        seconds = time.perf_counter() - tick
        lrs = {f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups}
        run.curve.append({
            "step": step + 1, "loss": loss.item(), **lrs, "temperature": 1 / model.logit_scale.exp().item(),
            "samples_per_s": len(index) / seconds,
        })  # fmt: skip
        if (step + 1) % config.save_every == 0 or step + 1 == end:
            save(step + 1)
        if (step + 1) % max(1, config.steps // 10) == 0:
            log(f"step {step + 1}/{config.steps} loss {loss.item():.3f} ({len(index) / seconds:.0f} samples/s)")
    run.train_seconds = time.perf_counter() - began
    return run


def curves_png(curve: list[dict], title: str) -> bytes:
    """Loss, learning rates and throughput per step, side by side."""
    from flip_assets.core.io.plots import figure_png, new_figure

    figure, loss_axes = new_figure(12, 3.5)
    loss_axes.remove()
    steps = [row["step"] for row in curve]
    axes = figure.subplots(1, 3)
    axes[0].plot(steps, [row["loss"] for row in curve])
    axes[0].set(title="contrastive loss", xlabel="step")
    for name in sorted(k for k in curve[0] if k.startswith("lr_")):
        axes[1].plot(steps, [row[name] for row in curve], label=name.removeprefix("lr_"))
    axes[1].set(title="learning rate", xlabel="step", yscale="log")
    axes[1].legend()
    axes[2].plot(steps, [row["samples_per_s"] for row in curve])
    axes[2].set(title="throughput (samples/s)", xlabel="step")
    figure.suptitle(title)
    return figure_png(figure)
