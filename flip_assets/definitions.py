"""The code location: every domain's definitions merged into one Definitions object.

A domain is a package in flip_assets/defs/ whose definitions.py holds its `defs` (assets,
checks, jobs, sensors); adding one (release, analytics, training, evaluation) is adding its
name to DOMAINS.
"""

from importlib import import_module

from dagster import Definitions

from flip_assets.defs.resources import build_resources

DOMAINS = ["curation"]

# The resources are shared by the domains, so they are bound once: merge refuses two objects
# under one key.
defs = Definitions.merge(
    Definitions(resources=build_resources()),
    *(import_module(f"flip_assets.defs.{name}.definitions").defs for name in DOMAINS),
)
