"""The evaluation domain: the downstream tables and the ablation (resources: resources.py)."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.evaluation import ablation, tables

MODULES = [tables, ablation]

defs = Definitions(assets=load_assets_from_modules(MODULES), asset_checks=load_asset_checks_from_modules(MODULES))
