"""What a run of the whole pipeline produced, for the summary the main command prints last: the
curation funnel per shard, read from the published files (never from run metadata, so it shows
what a user would find), and the check outcomes of the runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

# (stage of the funnel, asset whose published file counts it, column, how a row counts)
FUNNEL = (
    ("raw", "raw_shards", "key", None),
    ("downloaded", "raw_shards", "status", lambda col: pc.equal(col, "ok")),
    ("face", "face_detections", "kept", lambda col: col),
    ("face_text", "face_text_pairs", "kept", lambda col: col),
    ("denoised", "denoised_captions", "outcome", lambda col: pc.not_equal(col, "dropped")),
    ("released", "flip_release", "key", None),
)
STAGES = tuple(stage for stage, *_ in FUNNEL)


def funnel(file_of: Callable[[str, str], Path], shards: Iterable[str]) -> list[dict]:
    """Samples at each stage, one row per shard and a last row 'total'; None where a shard has
    no published file for the stage (its run failed or was refused). file_of(asset, shard)."""
    rows = []
    for shard in shards:
        row = {"shard": shard}
        for stage, asset, column, counts in FUNNEL:
            path = file_of(asset, shard)
            if not path.is_file():
                row[stage] = None
                continue
            values = pq.read_table(path, columns=[column]).column(column)
            row[stage] = len(values) if counts is None else int(pc.sum(counts(values)).as_py() or 0)
        rows.append(row)
    rows.append({"shard": "total", **{s: sum(r[s] for r in rows if r[s] is not None) for s in STAGES}})
    return rows


def funnel_table(rows: list[dict]) -> str:
    """The funnel as aligned text columns; '-' where a file is missing."""
    header = ["shard", *STAGES]
    cells = [header] + [[str(r["shard"])] + ["-" if r[s] is None else str(r[s]) for s in STAGES] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells)


@dataclass
class CheckTally:
    """Asset check evaluations of the runs: passed, failed (ERROR) and warned (WARN, not passed)."""

    passed: int = 0
    failed: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)

    def add(self, name: str, passed: bool, warning: bool) -> None:
        if passed:
            self.passed += 1
        else:
            (self.warned if warning else self.failed).append(name)

    def line(self) -> str:
        def named(names: list[str]) -> str:
            return f" ({', '.join(sorted(set(names)))})" if names else ""

        return f"{self.passed} passed, {len(self.failed)} failed{named(self.failed)}, {len(self.warned)} warned{named(self.warned)}"
