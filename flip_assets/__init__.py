"""flip-platform: curates a FLIP-80M style face-text dataset.

The Dagster code location is flip_assets.definitions; importing this package loads no Dagster,
so the plain logic in flip_assets.core stays cheap to import.
"""
