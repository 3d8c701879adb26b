"""The release domain: candidates, dedup index, the release and its exclusions, the AIGC subset."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from flip_assets.defs.release import assets

# The UI group of every asset of the domain: the folder's name (flip_assets/defs/release/).
GROUP = "release"

defs = Definitions(assets=load_assets_from_modules([assets], group_name=GROUP), asset_checks=load_asset_checks_from_modules([assets]))
