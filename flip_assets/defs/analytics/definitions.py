"""The analytics domain: demographics of the released faces, dataset statistics, dataset card."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.analytics import demographics, statistics

MODULES = [demographics, statistics]

defs = Definitions(assets=load_assets_from_modules(MODULES), asset_checks=load_asset_checks_from_modules(MODULES))
