"""flip-platform: a Dagster code location that curates a FLIP-80M style face-text dataset."""

from flip_assets.definitions import defs

__all__ = ["defs"]
