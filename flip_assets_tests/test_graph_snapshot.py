"""The asset graph against a committed snapshot, so that a structural change (an asset, a
dependency, a partitioning, a check or its blocking flag, a group, kinds, tags, a job's
selection, a sensor's target, a code version, pool, backfill policy or automation condition)
is a visible diff in review. Names and flags only, no
descriptions: rewording a docstring does not touch the snapshot.

After an intended change, rewrite it and commit the diff:
    FLIP_UPDATE_SNAPSHOTS=1 pytest flip_assets_tests/test_graph_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
UPDATE = "FLIP_UPDATE_SNAPSHOTS=1 pytest flip_assets_tests/test_graph_snapshot.py"


def partitioning(partitions_def) -> dict | None:
    if partitions_def is None:
        return None
    name = getattr(partitions_def, "name", None)  # dynamic partitions are known by name
    # Dagster's class, as the UI and the daemon see it (defs/shards.py subclasses it for its errors).
    kind = next(c for c in type(partitions_def).__mro__ if c.__module__.startswith("dagster."))
    return {"type": kind.__name__, **({"name": name} if name else {})}


def graph_structure(defs) -> dict:
    """Every asset, job and sensor of the code location, sorted, as plain JSON values."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": partitioning(node.partitions_def),
            "checks": {
                check.name: "blocking" if graph.get(check).blocking else "non-blocking"
                for check in sorted(node.check_keys, key=lambda c: c.name)
            },
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            # Kinds are also stored as dagster/kind/* tags: listed once, above.
            "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/kind/")},
            # What automation and staleness rest on (defs/automation.py).
            "code_version": node.code_version,
            "pools": sorted(node.pools or ()),
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "automation_condition": node.automation_condition.get_label() if node.automation_condition else None,
        }
    jobs = {
        job.name: {
            "assets": sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys),
            "partitions": partitioning(job.partitions_def),
        }
        for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name)
        if not job.name.startswith("__")  # Dagster's implicit job of all assets
    }
    sensors = {s.name: {"jobs": sorted(t.job_name for t in s.targets)} for s in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {"assets": assets, "jobs": jobs, "sensors": sensors}


def test_asset_graph_matches_the_snapshot():
    from flip_assets.definitions import defs

    current = json.dumps(graph_structure(defs), indent=2) + "\n"
    if os.environ.get("FLIP_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
        return
    if not SNAPSHOT.exists():
        pytest.fail(f"{SNAPSHOT} is missing; write it with: {UPDATE}")
    committed = SNAPSHOT.read_text()
    if current != committed:
        diff = "".join(difflib.unified_diff(committed.splitlines(True), current.splitlines(True), "committed", "current"))
        pytest.fail(f"The asset graph differs from {SNAPSHOT.name}:\n{diff}\nIf the change is intended: {UPDATE}", pytrace=False)
