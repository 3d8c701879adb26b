"""The evaluation domain: the downstream tables and the ablation (resources: resources.py)."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.evaluation import ablation, tables

MODULES = [tables, ablation]

# The UI group of every asset of the domain: the folder's name (flip_assets/defs/evaluation/).
GROUP = "evaluation"

defs = Definitions(assets=load_assets_from_modules(MODULES, group_name=GROUP), asset_checks=load_asset_checks_from_modules(MODULES))
