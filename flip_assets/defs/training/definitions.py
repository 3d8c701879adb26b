"""The training domain: training pairs and the contrastive checkpoint (resources: resources.py)."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.training import checkpoint, pairs

MODULES = [pairs, checkpoint]

defs = Definitions(assets=load_assets_from_modules(MODULES), asset_checks=load_asset_checks_from_modules(MODULES))
