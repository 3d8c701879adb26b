"""The dual-encoder model classes, one per architecture, and their registry (MODELS).

A training configuration (flip_assets/training_configs/*.json) names its architecture;
dual_encoder.build_model builds the class registered for it. A new architecture is a subclass
of DualEncoder decorated with @register("name"): it defines the towers' frozen stems (run once
per data set, their outputs cached by contrastive_training.py) and trained tops (run every step).
"""

from __future__ import annotations

import math

# torch at the top: the classes below subclass nn.Module. dual_encoder.build_model imports it where a model is built,
# so loading the definitions never pays for torch (test_import_cost.py).
import torch
from torch import nn
from torch.nn import functional as F

from flip_assets.core.training.dual_encoder import ModelConfig, load_tokenizer, text_tower_path

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# architecture name (ModelConfig.architecture) -> the class that builds it
MODELS: dict[str, type[DualEncoder]] = {}


def register(architecture: str):
    """Class decorator: build configurations of `architecture` with this class."""

    def add(model_class: type[DualEncoder]) -> type[DualEncoder]:
        if architecture in MODELS:
            raise ValueError(f"architecture {architecture!r} is registered twice: {MODELS[architecture].__name__}, {model_class.__name__}")
        MODELS[architecture] = model_class
        return model_class

    return add


class DualEncoder(nn.Module):
    """An image tower and a text tower, each a frozen stem and a trained top, projected into one
    embedding space, and a learnable temperature. Subclasses define the stems and tops."""

    HEADS: tuple[str, ...] = ()  # top-level parameter names trained at head_lr

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    def image_stem(self, pixels):
        raise NotImplementedError

    def image_top(self, stems):
        return self.image_head(self.image_features(stems)[1])

    def image_features(self, stems):
        """(feature map (N, ...) with its spatial layout, pooled features (N, D)): the image
        tower's own output before the projection head (what probes and landmark heads read)."""
        raise NotImplementedError

    def image_head(self, pooled):
        """The projection of pooled image features into the shared embedding space."""
        raise NotImplementedError

    def text_stem(self, ids, mask):
        """-> (stems, mask)"""
        raise NotImplementedError

    def text_top(self, stems, mask):
        raise NotImplementedError

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


@register("mobilenet_v2_minilm")
class MobileNetMiniLM(DualEncoder):
    """The CPU architecture: torchvision's ImageNet MobileNetV2 and all-MiniLM-L6-v2, their
    lower parts (image_frozen_blocks, all but text_trainable_layers) frozen."""

    HEADS = ("image_projection", "text_projection", "logit_scale")

    def __init__(self, config: ModelConfig, pretrained: bool = True):
        super().__init__(config)
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
        return self.image_tower[: self.config.image_frozen_blocks]((pixels.float() - self.mean) / self.std)

    def image_head(self, pooled):
        return self.image_projection(pooled)

    def image_features(self, stems):
        feature_map = self.image_tower[self.config.image_frozen_blocks :](stems.float())
        return feature_map, feature_map.mean(dim=(2, 3))

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


@register("clip")
class Clip(DualEncoder):
    """transformers' CLIPModel sized as the paper's Table 3 (ViT-B/32, B/16, L/14), for GPUs; its
    text tower takes MiniLM's vocabulary and pools at [SEP]. The stems only pass inputs through."""

    HEADS = ("logit_scale",)

    def __init__(self, config: ModelConfig, pretrained: bool = True):
        # `pretrained` has nothing to load: no CLIP weights can be fetched here, so the paper's
        # towers start from random weights either way.
        super().__init__(config)
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
        self.clip = CLIPModel(clip_config)
        self.clip.logit_scale.requires_grad_(False)  # ours is self.logit_scale
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def image_stem(self, pixels):
        return pixels

    def image_head(self, pooled):
        return self.clip.visual_projection(pooled)

    def image_features(self, pixels):
        out = self.clip.vision_model(pixel_values=(pixels.float() - self.mean) / self.std)
        return out.last_hidden_state[:, 1:], out.pooler_output  # the patch tokens keep the layout

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
