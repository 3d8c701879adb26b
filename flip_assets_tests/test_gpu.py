"""FLIP_DEVICE=cuda: the detector, the caption classifier and contrastive training on a GPU give
what they give on the CPU, and training there uses mixed precision and resumes.

Marked gpu: conftest skips them where torch finds no CUDA (CI), reported as skipped. On a GPU
machine: `pytest -m gpu flip_assets_tests/test_gpu.py`. They import no Dagster (the logic lives
in flip_assets.core), so they also run with `--noconftest` where only torch is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

# As conftest's, repeated so that the file runs without conftest (and so without Dagster).
SHARED = Path(os.environ.get("FLIP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATA, MODELS = SHARED / "data", SHARED / "models"


@pytest.fixture(scope="module")
def cuda():
    import torch

    return torch.device("cuda")


def test_retinaface_on_cuda_finds_the_faces_it_finds_on_the_cpu():
    from flip_assets.core.curation.detectors import build_detector
    from flip_assets.core.io.images import decode_rgb

    images = [decode_rgb(p.read_bytes(), 4096 * 4096).rgb for p in sorted((DATA / "eval" / "dlib_faces").glob("*.jpg"))]
    assert len(images) >= 5
    cpu = build_detector("retinaface", MODELS, batch_size=4, min_score=0.5, device="cpu").detect(images)
    gpu = build_detector("retinaface", MODELS, batch_size=4, min_score=0.5, device="cuda").detect(images)
    assert sum(len(d.scores) for d in cpu) >= len(images)  # the photos do show faces
    for on_cpu, on_gpu in zip(cpu, gpu):
        # cuDNN convolutions sum in another order: a face scoring right at 0.5 may flip; others may not.
        confident = on_cpu.scores > 0.6
        assert (on_gpu.scores > 0.6).sum() == confident.sum()
        gpu_confident = on_gpu.boxes[on_gpu.scores > 0.6]
        np.testing.assert_allclose(gpu_confident, on_cpu.boxes[confident], atol=1.0)


def test_caption_classifier_fine_tunes_on_cuda_and_scores_as_on_the_cpu(tmp_path):
    import torch

    from flip_assets.core.curation.caption_classifier import TrainingSettings, load_classifier, save_classifier, score_texts, train_classifier
    from flip_assets.core.training.dual_encoder import text_tower_path

    faces = ["portrait of a smiling young woman with freckles", "close-up of an old man with a grey beard",
             "headshot of an actress with red lipstick", "a crying baby with big blue eyes"]  # fmt: skip
    other = ["14k white gold diamond stud earrings", "Chicken Soup for the Kids Soul paperback",
             "leather skull purse with zip", "red sports car parked on a street"]  # fmt: skip
    texts, labels = (faces + other) * 8, ([1] * 4 + [0] * 4) * 8
    model, tokenizer, curve = train_classifier(
        text_tower_path(), [(texts, labels)], (faces + other, [1] * 4 + [0] * 4),
        TrainingSettings(epochs=3, batch_size=16, learning_rate=3e-4, frozen_layers=0), log=lambda _: None, device="cuda",
    )  # fmt: skip
    assert next(model.parameters()).device.type == "cuda"
    assert curve[-1]["validation_accuracy"] == 1.0 and curve[-1]["train_loss"] < curve[0]["train_loss"]
    saved = save_classifier(model, tokenizer, tmp_path / "classifier")
    scores = {}
    for device in ("cpu", "cuda"):
        loaded, loaded_tokenizer = load_classifier(saved, device=device)
        assert next(loaded.parameters()).device.type == device
        scores[device] = score_texts(loaded, loaded_tokenizer, faces + other)
    np.testing.assert_allclose(scores["cuda"], scores["cpu"], atol=1e-3)
    torch.cuda.synchronize()


def test_clip_vit_b32_trains_on_cuda_in_bf16_resumes_and_reloads_on_the_cpu(cuda, tmp_path):
    """The paper's ViT-B/32 configuration at full width: the step runs under bf16 autocast, the
    loss falls, a killed run resumes on the GPU, and the checkpoint embeds alike on the CPU."""
    import torch

    from flip_assets.core.training.contrastive_training import amp_context, image_tensor, prepare_inputs, train
    from flip_assets.core.training.dual_encoder import build_model, load_checkpoint, load_config, load_tokenizer, save_checkpoint
    from flip_assets.core.training.training_pairs import celeba_pairs

    autocast, scaler = amp_context(cuda)
    assert autocast.fast_dtype == torch.bfloat16 and scaler is None  # Ampere and later: bf16, no loss scaling
    pairs = celeba_pairs(DATA / "eval" / "celeba_attr.parquet", seed=0, max_samples=256)
    images, hashes, captions = (pairs[c].to_pylist() for c in ("image", "sha256", "caption"))
    config = load_config("clip_vit_b32").scaled(batch_size=64, steps=12, warmup_steps=2, save_every=4)
    tokenizer = load_tokenizer()

    def fresh():
        model = build_model(config, seed=0)
        return model, prepare_inputs(model, tokenizer, images, hashes, captions, tmp_path / "cache", cuda)

    model, inputs = fresh()
    whole = train(model, inputs, config, 0, cuda, log=print)
    losses = [row["loss"] for row in whole.curve]
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3]), losses
    print(f"clip_vit_b32 on {torch.cuda.get_device_name()}: {whole.samples_per_s:.0f} samples/s")

    killed, inputs = fresh()
    train(killed, inputs, config, 0, cuda, tmp_path / "state", log=lambda _: None, stop_after=6)
    resumed_model, inputs = fresh()
    resumed = train(resumed_model, inputs, config, 0, cuda, tmp_path / "state", log=lambda _: None)
    assert resumed.resumed_from_step == 6
    # bf16 kernels are not bit-reproducible across runs: the resumed curve follows the whole one closely.
    np.testing.assert_allclose([r["loss"] for r in resumed.curve], losses, rtol=0.05)

    saved = save_checkpoint(model, tokenizer, tmp_path / "model", {"steps": config.steps, "sources": "test", "final_loss": losses[-1], "temperature": 0}, {"seed": 0})  # fmt: skip
    reloaded, _ = load_checkpoint(saved)
    pixels = image_tensor(images[:8], config.image_size)
    with torch.inference_mode():
        on_gpu = model.to(cuda).eval().encode_images(pixels.to(cuda)).cpu()
        on_cpu = reloaded.encode_images(pixels)
    # The same image embeds to the same direction on both devices (fp32 inference).
    assert torch.nn.functional.cosine_similarity(on_gpu, on_cpu).min() > 0.999
