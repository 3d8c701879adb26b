"""python -m flip_assets.tools.shards on a real instance (the checkout's dagster.yaml in a temp
DAGSTER_HOME): shards are added only from their tar in FLIP_SOURCE, and a shard with
materializations is removed only when told, saying what stays."""

from __future__ import annotations

import shutil

import pytest
from conftest import RAW_SHARDS, REPO_ROOT
from dagster import AssetMaterialization, DagsterInstance

from flip_assets.tools.shards import main

# slow: `add` and `remove` read FLIP_SOURCE as the definitions do, importing their resources (torch).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def instance_home(tmp_path, monkeypatch):
    home, source = tmp_path / "dagster_home", tmp_path / "source"
    home.mkdir()
    source.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    for shard in ("00000", "00001"):
        (source / f"{shard}.tar").symlink_to(RAW_SHARDS / f"{shard}.tar")
    monkeypatch.chdir(home)  # dagster.yaml's storage paths are relative to the working directory
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("FLIP_SOURCE", str(source))
    return home


def registered(home) -> list[str]:
    with DagsterInstance.from_config(str(home)) as instance:
        return sorted(instance.get_dynamic_partitions("shards"))


def test_add_list_and_remove_shards(instance_home, capsys):
    assert main(["add", "00007"]) == 1  # no such tar: nothing is added
    assert "no 00007.tar in" in capsys.readouterr().err and registered(instance_home) == []
    assert main(["add"]) == 0
    assert registered(instance_home) == ["00000", "00001"]

    with DagsterInstance.from_config(str(instance_home)) as instance:
        instance.report_runless_asset_event(AssetMaterialization("raw_shards", partition="00001"))
    capsys.readouterr()
    assert main(["list"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["00000  nothing materialized", "00001  raw_shards"]

    # A shard with materializations stays unless --force, which says what it leaves.
    assert main(["remove", "00001"]) == 1
    refused = capsys.readouterr().err
    assert "raw_shards" in refused and "--force" in refused and registered(instance_home) == ["00000", "00001"]
    assert main(["remove", "00001", "--force"]) == 0
    said = capsys.readouterr().out
    assert "materializations of raw_shards" in said and "FLIP_HOME (<asset>/00001.parquet)" in said
    assert "00001.tar is still in FLIP_SOURCE" in said  # the sensor would add it again
    assert registered(instance_home) == ["00000"]

    assert main(["remove", "00000"]) == 0  # nothing materialized: removed without --force
    assert "left as they were" not in capsys.readouterr().out and registered(instance_home) == []
    assert main(["remove", "99999"]) == 1
    assert "no shard '99999' (no shard is registered yet)" in capsys.readouterr().err
