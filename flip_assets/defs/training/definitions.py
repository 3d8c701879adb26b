"""The training domain: training pairs and the contrastive checkpoint (its resource, TrainingResource,
is evaluation's too: ../shared_resources.py)."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.training import checkpoint, pairs

MODULES = [pairs, checkpoint]

# The UI group of every asset of the domain: the folder's name (flip_assets/defs/training/).
GROUP = "training"

defs = Definitions(assets=load_assets_from_modules(MODULES, group_name=GROUP), asset_checks=load_asset_checks_from_modules(MODULES))
