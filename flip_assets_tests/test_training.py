"""Contrastive training: the towers' weights, the paper's configurations, a few real training
steps on CelebA pairs (loss falls, the checkpoint round-trips, a killed run resumes)."""

from __future__ import annotations

import pytest
from conftest import DATA

from flip_assets.core.training.dual_encoder import available_configs, build_model, load_config, load_tokenizer

PAPER_CONFIGS = ["clip_vit_b32", "clip_vit_b16", "clip_vit_l14"]


@pytest.fixture(scope="module")
def celeba_pairs_small():
    from flip_assets.core.training.training_pairs import celeba_pairs

    return celeba_pairs(DATA / "eval" / "celeba_attr.parquet", seed=0, max_samples=48)


def test_mobilenet_v2_weights_classify_a_real_photo():
    import torch

    from flip_assets.core.training.contrastive_training import decode_square
    from flip_assets.core.training.mobilenet_v2 import IMAGENET_MEAN, IMAGENET_STD, load_imagenet_mobilenet_v2

    model = load_imagenet_mobilenet_v2()
    pixels = torch.from_numpy(decode_square((DATA / "eval" / "dlib_faces" / "dogs.jpg").read_bytes(), 224)).float()[None] / 255
    pixels = (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        probabilities = model(pixels).softmax(-1)[0]
    # ImageNet classes 151-268 are dog breeds; the photo shows terriers.
    assert 151 <= int(probabilities.argmax()) <= 268 and float(probabilities.max()) > 0.5


def test_every_config_file_loads_and_a_bad_one_names_itself(tmp_path):
    assert set(PAPER_CONFIGS) | {"cpu_mobilenet_v2_minilm"} <= set(available_configs())
    for name in available_configs():
        assert load_config(name).name == name
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "colour": 1}')
    with pytest.raises(ValueError, match="bad.json.*colour"):
        load_config(str(bad))


def reduced(config):
    """The configuration with CLIP towers a CPU builds in a second (MobileNetV2-MiniLM ones keep their size)."""
    return config.scaled(vision_width=32, vision_layers=1, vision_heads=2, text_width=32, text_layers=1, text_heads=2)


def embeddings(model, config):
    """Image and text embeddings of two fixed inputs."""
    import torch

    from flip_assets.core.training.dual_encoder import tokenize

    pixels = torch.randint(0, 256, (2, 3, config.image_size, config.image_size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ids, mask = tokenize(load_tokenizer(), ["a smiling woman with glasses", "an old man"], config.max_text_tokens)
    with torch.inference_mode():
        return model.encode_images(pixels), model.encode_texts(ids, mask)


@pytest.mark.parametrize("name", available_configs())
def test_every_registered_config_builds_its_architecture_and_embeds(name):
    from flip_assets.core.training.dual_encoder_models import MODELS

    config = reduced(load_config(name))
    model = build_model(config, seed=0)
    assert type(model) is MODELS[config.architecture] and not model.training
    images, texts = embeddings(model, config)
    assert images.shape == texts.shape == (2, config.embed_dim)


def test_an_unknown_config_or_architecture_fails_naming_the_registered_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="'clip_vit_b64' not found \\(available: clip_vit_b16, clip_vit_b32, clip_vit_l14, cpu_mobilenet_v2_minilm\\)"):
        load_config("clip_vit_b64")
    with pytest.raises(ValueError, match="architecture 'resnet_bert' of config 'cpu_mobilenet_v2_minilm' is not registered \\(registered: clip, mobilenet_v2_minilm\\)"):
        build_model(load_config("cpu_mobilenet_v2_minilm").scaled(architecture="resnet_bert"))
    bad = tmp_path / "bad.json"
    bad.write_text(load_config.__globals__["config_dir"]().joinpath("clip_vit_b32.json").read_text().replace('"clip"', '"vit"'))
    with pytest.raises(ValueError, match="bad.json: architecture 'vit' is not registered \\(registered: clip, mobilenet_v2_minilm\\)"):
        load_config(str(bad))


# Computed by build_model before its model classes moved to module level (issue 20): the same
# seed gives the same weights, so the same embeddings (first four values of the first input's).
BEFORE_THE_REGISTRY = {
    "cpu_mobilenet_v2_minilm": ([-0.003297, 0.044711, 0.019321, 0.020225], [0.047982, 0.001979, 0.027670, 0.097237]),
    "clip_vit_b32": ([-0.014192, 0.072823, 0.044980, 0.036931], [0.054935, 0.014685, 0.008721, -0.002812]),
}


@pytest.mark.parametrize("name", sorted(BEFORE_THE_REGISTRY))
def test_a_fixed_seed_builds_the_weights_it_always_built(name):
    config = reduced(load_config(name))
    images, texts = embeddings(build_model(config, seed=3), config)
    expected_images, expected_texts = BEFORE_THE_REGISTRY[name]
    assert images[0, :4].tolist() == pytest.approx(expected_images, abs=2e-5)
    assert texts[0, :4].tolist() == pytest.approx(expected_texts, abs=2e-5)


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_builds_at_reduced_width_and_takes_a_step(name, celeba_pairs_small):
    """The paper's CLIP configurations keep their patch size, 224 px and 77 tokens; only width
    and depth shrink so that one step runs on a CPU."""
    import torch

    from flip_assets.core.training.contrastive_training import prepare_inputs, train

    config = load_config(name).scaled(
        vision_width=32, vision_layers=1, vision_heads=2, text_width=32, text_layers=1, text_heads=2,
        embed_dim=16, batch_size=4, steps=2, warmup_steps=0,
    )  # fmt: skip
    assert (config.image_size, config.max_text_tokens) == (224, 77)
    model, tokenizer = build_model(config), load_tokenizer()
    assert model.clip.config.vision_config.patch_size == config.patch_size
    pairs = celeba_pairs_small.slice(0, 4)
    inputs = prepare_inputs(model, tokenizer, pairs["image"].to_pylist(), pairs["sha256"].to_pylist(), pairs["caption"].to_pylist(), None, torch.device("cpu"))  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    run = train(model, inputs, config, 0, torch.device("cpu"), log=lambda _: None, stop_after=1)
    assert len(run.curve) == 1 and torch.isfinite(torch.tensor(run.curve[0]["loss"]))
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p)]
    assert any(n.startswith("clip.vision_model") for n in changed) and any(n.startswith("clip.text_model") for n in changed)


@pytest.mark.slow
def test_cpu_training_loss_falls_checkpoint_round_trips_and_a_killed_run_resumes(celeba_pairs_small, tmp_path):
    import torch

    from flip_assets.core.training.contrastive_training import image_tensor, prepare_inputs, train
    from flip_assets.core.training.dual_encoder import load_checkpoint, save_checkpoint, tokenize

    config = load_config("cpu_mobilenet_v2_minilm").scaled(batch_size=16, steps=8, warmup_steps=1, save_every=2, head_lr=3e-3)
    device, tokenizer = torch.device("cpu"), load_tokenizer()
    images, hashes, captions = (celeba_pairs_small[c].to_pylist() for c in ("image", "sha256", "caption"))

    def fresh():
        model = build_model(config, seed=0)
        return model, prepare_inputs(model, tokenizer, images, hashes, captions, tmp_path / "cache", device)

    model, inputs = fresh()
    whole = train(model, inputs, config, 0, device, log=lambda _: None)
    losses = [row["loss"] for row in whole.curve]
    assert sum(losses[-2:]) < sum(losses[:2]), losses

    # Killed after 5 steps: state saved at step 4 (save_every 2) and at the stop; a new process resumes at 5.
    killed, inputs = fresh()
    train(killed, inputs, config, 0, device, tmp_path / "state", log=lambda _: None, stop_after=5)
    resumed_model, inputs = fresh()
    resumed = train(resumed_model, inputs, config, 0, device, tmp_path / "state", log=lambda _: None)
    assert resumed.resumed_from_step == 5
    assert [r["loss"] for r in resumed.curve] == pytest.approx(losses, rel=1e-4)

    saved = save_checkpoint(model, tokenizer, tmp_path / "model", {"steps": 8, "sources": "test", "final_loss": 0, "temperature": 0}, {"seed": 0})  # fmt: skip
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= {p.name for p in saved.iterdir()}
    reloaded, reloaded_tokenizer = load_checkpoint(saved)
    ids, mask = tokenize(reloaded_tokenizer, captions[:4], config.max_text_tokens)
    pixels = image_tensor(images[:4], config.image_size)
    with torch.inference_mode():
        for a, b in ((model.encode_images(pixels), reloaded.encode_images(pixels)), (model.encode_texts(ids, mask), reloaded.encode_texts(ids, mask))):
            assert torch.allclose(a, b, atol=1e-6)
