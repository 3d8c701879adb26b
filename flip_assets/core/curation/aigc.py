"""AI-generated content augmentation (paper 3.1 "AI-Generated Content Augmentation").

Sampled face-text pairs are recaptioned by a vision-capable chat model, once in general and
once about the face, and the two captions, concatenated, prompt an image model (DALL-E 3
compatible images API) for a 1024x1024 image. Each sample keeps image, caption, source key,
model names and cost. Replies are cached like every other model call, so a re-run pays
nothing twice.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from PIL import Image

from flip_assets.core.io.images import MAX_PIXELS, ImageRejected, decode_rgb
from flip_assets.core.curation.llm_client import LLMClient, Reply

IMAGE_SIZE = 1024
GENERAL_PROMPT = (
    "Describe this image in one sentence for a photo caption: the scene, the people and what they are doing."
)
FACE_PROMPT = (
    "Describe the face of the main person in this image in one sentence: apparent age, gender, "
    "expression, hair, eyes, facial hair, make-up and accessories such as glasses or earrings."
)
MAX_CAPTION_CHARS = 1000  # DALL-E 3 accepts 4000; two sentences never need more

OK = "ok"
AIGC_SCHEMA = pa.schema(
    [
        ("source_key", pa.string()),
        ("source_caption", pa.string()),
        ("general_caption", pa.string()),
        ("face_caption", pa.string()),
        ("caption", pa.string()),  # general + face caption: the image prompt
        ("image", pa.binary()),  # encoded image as the API returned it (PNG for DALL-E 3)
        ("image_sha256", pa.string()),
        ("image_width", pa.int32()),
        ("image_height", pa.int32()),
        ("vision_model", pa.string()),
        ("image_model", pa.string()),
        ("cost_usd", pa.float64()),  # what producing the sample cost, cached or not
        ("cached", pa.bool_()),  # every reply came from the cache: nothing paid in this run
        ("status", pa.string()),  # ok, or why there is no image
    ]
)


@dataclass(frozen=True)
class Prices:
    image_usd: float
    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def chat(self, reply: Reply) -> float:
        return (reply.prompt_tokens * self.input_usd_per_mtok + reply.completion_tokens * self.output_usd_per_mtok) / 1e6


def sample_pairs(pairs: Sequence[dict], count: int, seed: int) -> list[dict]:
    """`count` kept pairs chosen by seed, independent of input order."""
    kept = sorted((p for p in pairs if p.get("kept", True)), key=lambda p: p["key"])
    return random.Random(seed).sample(kept, min(count, len(kept)))


def image_data_url(data: bytes) -> str:
    """The image as a data URL in its own format (JPEG, PNG, WebP); other formats become JPEG."""
    with Image.open(io.BytesIO(data)) as img:
        fmt = (img.format or "").upper()
    if fmt not in ("JPEG", "PNG", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(decode_rgb(data, MAX_PIXELS).rgb).save(buffer, format="JPEG", quality=90)
        data, fmt = buffer.getvalue(), "JPEG"
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(data).decode('ascii')}"


def vision_messages(prompt: str, data_url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": data_url}}]}]


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def generate_samples(
    samples: Sequence[dict],
    client: LLMClient,
    vision_model: str,
    image_model: str,
    prices: Prices,
    progress=None,
) -> tuple[list[dict], float]:
    """samples: pair rows with key, caption and image (bytes or None). Returns one AIGC_SCHEMA
    row per sample and the money spent in this run (cache hits cost nothing)."""
    rows, spent = [], 0.0
    asks: list[tuple[int, str]] = []  # (row index, data URL)
    for sample in samples:
        row = {name: None for name in AIGC_SCHEMA.names}
        row.update(source_key=sample["key"], source_caption=sample["caption"], vision_model=vision_model,
                   image_model=image_model, cost_usd=0.0, cached=False)  # fmt: skip
        rows.append(row)
        try:
            decode_rgb(sample.get("image"), MAX_PIXELS)  # refuse broken source images before paying
            asks.append((len(rows) - 1, image_data_url(sample["image"])))
        except ImageRejected as exc:
            row["status"] = f"source_image:{exc.reason}"

    conversations = [vision_messages(p, url) for _, url in asks for p in (GENERAL_PROMPT, FACE_PROMPT)]
    replies = client.chat_many(vision_model, conversations, [120] * len(conversations), progress=progress)
    to_draw: list[int] = []
    for n, (i, _) in enumerate(asks):
        general, face = replies[2 * n], replies[2 * n + 1]
        row = rows[i]
        row["cost_usd"] = prices.chat(general) + prices.chat(face)
        spent += sum(prices.chat(r) for r in (general, face) if not r.cached)
        row["cached"] = general.cached and face.cached
        if general.error or face.error or not _one_line(general.text) or not _one_line(face.text):
            row["status"] = f"recaption:{general.error or face.error or 'empty_caption'}"
            continue
        row["general_caption"], row["face_caption"] = _one_line(general.text), _one_line(face.text)
        row["caption"] = f"{row['general_caption']} {row['face_caption']}"[:MAX_CAPTION_CHARS]
        to_draw.append(i)

    images = client.generate_images(image_model, [rows[i]["caption"] for i in to_draw], f"{IMAGE_SIZE}x{IMAGE_SIZE}")
    for i, reply in zip(to_draw, images):
        row = rows[i]
        row["cost_usd"] += prices.image_usd
        spent += 0.0 if reply.cached else prices.image_usd
        row["cached"] = row["cached"] and reply.cached
        if reply.error:
            row["status"] = f"image:{reply.error}"
            continue
        try:
            data = base64.b64decode(reply.text, validate=True)
            decoded = decode_rgb(data, MAX_PIXELS)
        except (ValueError, ImageRejected) as exc:
            row["status"] = f"image:undecodable ({type(exc).__name__})"
            continue
        height, width = decoded.rgb.shape[:2]
        row.update(image=data, image_sha256=hashlib.sha256(data).hexdigest(), image_width=width, image_height=height)
        row["status"] = OK if (width, height) == (IMAGE_SIZE, IMAGE_SIZE) else f"image:size {width}x{height}"
    return rows, spent
