"""dataset_statistics at the paper's size, from per-shard partial aggregates (issue 23).

    python -m bench.scale_statistics [--rows 1000000 10000000 80000000] [--shard-rows 100000] [--templates 8]

What it measures, per size (released rows): the cost of adding one shard (its partial from its
stage files: `statistics_partial`, then written) and of the merged statistics over every
shard's partial (`statistics_from_partials`: read the partials, check each is current from its
stage files' footers, add them up), each in its own process so that its peak RSS is its own.

How the release is made: `--templates` synthetic shards of `--shard-rows` released rows (every
stage the statistics read, from bench.release_statistics: a fixture generated from the schema,
not data) and their partials are computed once; a release of N rows is then N / shard-rows
shards, each a template's stage files (symbolic links) and a copy of its partial under the
shard's name (written by pyarrow). The merge reads as many partial files and footers, and adds
as many rows, as a release of N distinct rows would give (the partials' size follows the
distinct values of a shard, not the release), so the timing holds; the figures merged are the
templates' repeated. Files go to a temporary folder on /tmp (df checked first, removed after).

Prints one JSON object per line: rows, shards, what was measured, wall and CPU seconds, peak RSS
(MiB), the load average beside it, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.release_statistics import write_synthetic_release
from flip_assets.core.analytics.statistics import PARTIAL, STATISTICS_COLUMNS, statistics_from_partials, statistics_partial
from flip_assets.core.io import storage

NEW_SHARD = "new"  # the shard added to a release of N rows


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM"


def _write_partial(home: Path, shard: str, table: pa.Table) -> Path:
    path = storage.partition_path(home, PARTIAL, shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def make_templates(home: Path, count: int, shard_rows: int) -> dict[str, pa.Table]:
    """`count` synthetic shards under home/templates and their partials."""
    templates = home / "templates"
    shards = write_synthetic_release(templates, rows=count * shard_rows, shard_rows=shard_rows)
    return {shard: statistics_partial(templates, [shard]) for shard in shards}


def make_release(home: Path, rows: int, shard_rows: int, templates: dict[str, pa.Table]) -> list[str]:
    """A release of `rows` released rows under home/release: per shard, links to a template's
    stage files and the template's partial under the shard's name."""
    release, names = home / "release", sorted(templates)
    shards = [f"{n:06d}" for n in range(-(-rows // shard_rows))]
    for stage in STATISTICS_COLUMNS:
        (release / stage).mkdir(parents=True, exist_ok=True)
    for number, shard in enumerate(shards):
        template = names[number % len(names)]
        for stage in STATISTICS_COLUMNS:
            os.symlink(storage.partition_path(home / "templates", stage, template), storage.partition_path(release, stage, shard))
        table = templates[template]
        _write_partial(release, shard, table.set_column(0, "shard", pa.array([shard] * table.num_rows, pa.string())))
    return shards


def _measure(what: str, home: Path) -> dict:
    """In a child process: one measurement, with this process's own peak RSS."""
    started, cpu = time.perf_counter(), time.process_time()
    if what == "merge":
        shards = json.loads((home / "shards.json").read_text())
        stats = statistics_from_partials(home, shards)
        assert not stats.problems, stats.problems[:3]
        result = {"released": stats.captions["captions"], "partial_shards": len(stats.shards)}
    else:  # one shard's stage files -> its partial, written
        table = statistics_partial(home, [NEW_SHARD])
        _write_partial(home, NEW_SHARD, table)
        result = {"partial_rows": table.num_rows}
    return {
        "seconds": round(time.perf_counter() - started, 2), "cpu_seconds": round(time.process_time() - cpu, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **result,
    }  # fmt: skip


def _child(what: str, home: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale_statistics", "--child", what, str(home)], capture_output=True, text=True
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _add_new_shard(home: Path, template_home: Path, template: str) -> None:
    """The shard to add: a real copy of a template's stage files (no partial yet)."""
    for stage in STATISTICS_COLUMNS:
        shutil.copy(storage.partition_path(template_home, stage, template), storage.partition_path(home, stage, NEW_SHARD))


def run(sizes: list[int], shard_rows: int, templates_count: int, emit=print) -> list[dict]:
    """Measure every size; returns (and emits) the JSON lines."""
    lines = []

    def out(line: dict) -> None:
        line = {**line, "load_average": [round(x, 2) for x in os.getloadavg()], "machine": machine()}
        lines.append(line)
        emit(json.dumps(line))

    free = shutil.disk_usage(tempfile.gettempdir()).free
    # Templates: about 60 MiB per million released rows across every stage; partials some 100 KiB each.
    needed = templates_count * shard_rows * 60 + max(sizes) // shard_rows * 200_000
    if free < 2 * needed:
        raise SystemExit(f"{free / 2**30:.1f} GiB free on {tempfile.gettempdir()}, need about {2 * needed / 2**30:.1f}")
    home = Path(tempfile.mkdtemp(prefix="scale_statistics_"))
    try:
        started = time.perf_counter()
        templates = make_templates(home, templates_count, shard_rows)
        out({"templates": templates_count, "shard_rows": shard_rows, "generate_seconds": round(time.perf_counter() - started, 1)})
        for rows in sizes:
            release = home / "release"
            shutil.rmtree(release, ignore_errors=True)
            started = time.perf_counter()
            shards = make_release(home, rows, shard_rows, templates)
            (release / "shards.json").write_text(json.dumps(shards))
            out({"rows": rows, "shards": len(shards), "layout_seconds": round(time.perf_counter() - started, 1)})
            _add_new_shard(release, home / "templates", sorted(templates)[0])
            out({"rows": rows, "shards": len(shards), "measured": "add_one_shard", "added_rows": shard_rows, **_child("add", release)})
            merged = _child("merge", release)
            assert merged["released"] == len(shards) * shard_rows, merged
            out({"rows": rows, "shards": len(shards), "measured": "merged_statistics", **merged})
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 80_000_000])
    parser.add_argument("--shard-rows", type=int, default=100_000, help="released rows per shard")
    parser.add_argument("--templates", type=int, default=8, help="distinct synthetic shards")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child[0], Path(args.child[1]))))
        return
    run(args.rows, args.shard_rows, args.templates, emit=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
