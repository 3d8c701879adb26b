"""The code location: every domain's definitions merged into one Definitions object.

A domain is a package in flip_assets/defs/ whose definitions.py holds its `defs` (assets,
checks, jobs, sensors); adding one (release, analytics, training, evaluation) is one import
and one entry in DOMAINS.
"""

from dagster import Definitions

from flip_assets.defs.analytics import definitions as analytics
from flip_assets.defs.automation import automation_sensor
from flip_assets.defs.curation import definitions as curation
from flip_assets.defs.evaluation import definitions as evaluation
from flip_assets.defs.executors import run_executor
from flip_assets.defs.release import definitions as release
from flip_assets.defs.resources import build_resources
from flip_assets.defs.training import definitions as training

DOMAINS = [curation.defs, release.defs, analytics.defs, training.defs, evaluation.defs]

# The resources are shared by the domains, so they are bound once: merge refuses two objects
# under one key; so is the sensor that evaluates every asset's automation condition. The executor
# (defs/executors.py) is also that of the asset jobs that UI and CLI materializations run:
# in-process unless deployed on Kubernetes, for the reason given in defs/curation/jobs.py.
defs = Definitions.merge(
    Definitions(resources=build_resources(), executor=run_executor(), sensors=[automation_sensor]), *DOMAINS
)
