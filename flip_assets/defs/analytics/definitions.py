"""The analytics domain: demographics of the released faces, dataset statistics, dataset card."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.analytics import demographics, statistics

MODULES = [demographics, statistics]

# The UI group of every asset of the domain: the folder's name (flip_assets/defs/analytics/).
GROUP = "analytics"

defs = Definitions(assets=load_assets_from_modules(MODULES, group_name=GROUP), asset_checks=load_asset_checks_from_modules(MODULES))
