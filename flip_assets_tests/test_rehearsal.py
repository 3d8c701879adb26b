"""The rehearsal of bench/rehearsal.py at a small size: tiny real shards registered on the
production instance (deploy/dagster.postgres.yaml on a real PostgreSQL server), backfills of
raw_shards + face_detections through `dagster dev`'s daemon with the run queue and pools as
deployed: a job backfill of one run per shard and an asset backfill of a range of shards in one
run, launched together. No run fails or hangs, every backfilled shard ends materialized, and the
UI's asset page and partitions view load. `python -m bench.rehearsal` is the same at 1,000 shards.
"""

from __future__ import annotations

import pytest

from bench.rehearsal import ASSETS, rehearse

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_backfills_through_the_daemon_on_postgres_materialize_every_shard(tmp_path, postgres_server):
    # Both backfills launched at once: the backfill daemon ticks every 30 s, and each backfill
    # waits for a tick to start and one to finish; side by side they share them.
    outcome = rehearse(tmp_path, shards=20, backfill=4, per_shard_runs=1, ui_repeats=1, stuck_after_s=400,
                       server=postgres_server, together=True)  # fmt: skip

    assert outcome.problems == []
    assert sorted(outcome.backfilled) == [f"{n:05d}" for n in range(5)]
    assert outcome.not_materialized() == {asset: [] for asset in ASSETS}
    # Nothing beyond the backfilled shards ran.
    assert all(set(outcome.materialized[asset]) == set(outcome.backfilled) for asset in ASSETS)
    per_shard, ranged = outcome.figures["per_shard_backfill"], outcome.figures["asset_backfill"]
    assert (per_shard["status"], per_shard["runs"], per_shard["finished"]) == ("COMPLETED_SUCCESS", 1, 1)
    # SINGLE_RUN_BACKFILL: the four shards of the asset backfill in one run.
    assert (ranged["status"], ranged["runs"], ranged["finished"]) == ("COMPLETED_SUCCESS", 1, 1)
    for figures in (per_shard, ranged):
        assert 0 < figures["step_s"]["median"] < figures["run_wall_s"]["median"]
        assert figures["overhead_s"]["median"] > 0
    assert outcome.figures["new_shards_sensor_tick_s"] > 0
    assert all(outcome.figures["ui"][page]["median"] > 0 for page in ("asset_page", "partitions_view"))
