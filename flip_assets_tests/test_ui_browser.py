"""The web UI as a person uses it: `dagster dev` on 127.0.0.1 opened in Debian's chromium, driven
by Playwright (its own browser download cannot work on these machines; .ci/run installs
chromium). Opens the asset graph, launches face_detections for one shard from the asset page's
materialize dialog, waits for the run to succeed, and finds the asset's metadata and check
results where a person would look for them.

The screenshots shown in the README are taken on the way; to refresh docs/ with them:
    FLIP_UPDATE_SNAPSHOTS=1 pytest flip_assets_tests/test_ui_browser.py
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import RAW_SHARDS, REPO_ROOT, make_resources, run_assets

from bench.rehearsal import CHROMIUM, CHROMIUM_FLAGS  # one home: the rehearsal times the same browser
from flip_assets.core.io.processes import interrupt_group

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHARD = "00000"
DOCS = REPO_ROOT / "docs"
SCREENSHOTS = ("ui_asset_graph.png", "ui_run.png", "ui_asset_page.png", "ui_asset_checks.png")
CHECKS = ("boxes_inside_image", "every_sample_accounted_for", "scores_in_range", "unique_keys")
# A run's process imports torch and the models first: slow on a busy two-core machine.
RUN_TIMEOUT_MS = 240_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"dagster dev did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def ui(tmp_path, monkeypatch):
    """`dagster dev -w workspace.yaml` (as `make ui` starts it) on a free port, with its own
    DAGSTER_HOME (the checkout's dagster.yaml, nothing added) and FLIP_HOME, one sample shard as
    the source, and raw_shards of that shard materialized on the instance beforehand (the UI
    then launches only face_detections)."""
    from dagster import DagsterInstance
    from flip_assets.defs.curation.s01_raw_shards import raw_shards

    source, flip_home, dagster_home = tmp_path / "source", tmp_path / "flip_home", tmp_path / "dagster_home"
    for path in (source, flip_home, dagster_home):
        path.mkdir()
    for shard_file in RAW_SHARDS.glob(f"{SHARD}*"):
        (source / shard_file.name).symlink_to(shard_file)
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    # The working directory is DAGSTER_HOME: dagster.yaml's storage paths are relative to it.
    monkeypatch.chdir(dagster_home)

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIP_")}
    env |= {
        "DAGSTER_HOME": str(dagster_home), "FLIP_HOME": str(flip_home), "FLIP_SOURCE": str(source),
        # YuNet: seconds per shard on a busy CPU where RetinaFace takes a minute; the UI path is the same.
        "FLIP_DETECTOR": "yunet",
        "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }  # fmt: skip
    # Before dagster dev starts: the shard as a partition, and raw_shards, on the instance. Done
    # first because a fresh SQLite instance created by two processes at once can end with two
    # schema heads (alembic), and dagster dev then fails to start.
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert run_assets([raw_shards], make_resources(flip_home, source), instance, SHARD).success
    port, log = free_port(), tmp_path / "dagster_dev.log"
    dagster = Path(sys.executable).parent / "dagster"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=dagster_home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, process, log)
        yield url, dagster_home
    finally:
        interrupt_group(process, timeout=15)


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()


def test_launch_face_detections_for_one_shard_from_the_ui(ui, page, tmp_path):
    from dagster import AssetKey, DagsterInstance
    from playwright.sync_api import expect

    url, dagster_home = ui
    shots = tmp_path / "screenshots"

    # The asset graph shows the pipeline's groups: the folders of flip_assets/defs/.
    page.goto(f"{url}/asset-groups")
    for group in ("curation", "release", "analytics", "training", "evaluation"):
        expect(page.get_by_text(group, exact=True).last).to_be_visible()
    # Dagster opens its "Join the Dagster community" dialog a second after the page loads on a
    # new instance, unless dagster.yaml turns it off (nux).
    page.wait_for_timeout(3000)
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)

    # The asset page, its materialize dialog: the shard picked from the partition list.
    page.goto(f"{url}/assets/face_detections")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize face_detections")).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill(SHARD)
    page.get_by_role("menuitem").filter(has_text=SHARD).click()
    launch = page.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    launch.click()

    # The run, from the "Launched run" note, until it succeeds.
    expect(page.get_by_text("Launched run")).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    status = page.get_by_text("Success", exact=True).or_(page.get_by_text("Failure", exact=True)).first
    expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    assert status.inner_text() == "Success", page.inner_text("body")[-3000:]
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.reload()  # the finished run as anyone opening it later sees it
    expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
    page.wait_for_timeout(1000)  # the step timeline settles
    page.screenshot(path=shots / SCREENSHOTS[1])

    # What the run recorded, read from the instance, is what the asset page shows.
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        event = instance.get_latest_materialization_event(AssetKey("face_detections"))
    assert event.run_id == run_id and event.asset_materialization.partition == SHARD
    recorded = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert recorded["detector"] == "yunet" and recorded["input_samples"] > 0

    page.goto(f"{url}/assets/face_detections")
    metadata = page.locator("table").filter(has_text="input_samples")
    for name in ("detector", "input_samples", "kept"):
        row = metadata.locator("tr").filter(has=page.get_by_text(name, exact=True))
        expect(row).to_contain_text(str(recorded[name]))
    page.get_by_text("Columns", exact=True).click()  # folded, so the metadata fits the screenshot
    page.get_by_text("Metadata", exact=True).first.scroll_into_view_if_needed()
    page.screenshot(path=shots / SCREENSHOTS[2])

    page.get_by_role("tab", name="Checks").or_(page.get_by_role("link", name="Checks", exact=True)).first.click()
    for check in CHECKS:
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(CHECKS))  # one under each name
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()  # the selected check's verdict
    page.screenshot(path=shots / SCREENSHOTS[3])

    # The graph of the stage's group (the whole graph, five domains, zooms out past the labels):
    # the two materialized assets now marked as such.
    page.goto(f"{url}/locations/flip_assets/asset-groups/curation")
    expect(page.get_by_text("face_detections", exact=True).last).to_be_visible()
    page.wait_for_timeout(2000)  # statuses fetched, layout settled
    page.screenshot(path=shots / SCREENSHOTS[0])

    if os.environ.get("FLIP_UPDATE_SNAPSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        for name in SCREENSHOTS:
            shutil.copy(shots / name, DOCS / name)
