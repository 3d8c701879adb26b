"""The release domain: candidates, dedup index, the release and its exclusions, the AIGC subset."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.release import assets

defs = Definitions(assets=load_assets_from_modules([assets]), asset_checks=load_asset_checks_from_modules([assets]))
