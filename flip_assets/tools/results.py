"""Print the evaluation tables of the latest materializations on the instance in $DAGSTER_HOME,
as Markdown: what the README's results section is pasted from, so that it shows what the
pipeline produced (not a scratch run with other settings).

    python -m flip_assets.tools.results            # flip_eval_tables and flip_ablation
    python -m flip_assets.tools.results --asset flip_ablation

Exits 1 naming the asset when one has never been materialized.
"""

from __future__ import annotations

import argparse
import sys

from dagster import AssetKey, DagsterInstance

from flip_assets.defs.asset_keys import FLIP_ABLATION, FLIP_EVAL_TABLES

# The metadata entries that hold each asset's tables, in the order they are printed.
TABLES = {
    FLIP_EVAL_TABLES: ("zero_shot", "linear_probe", "face_alignment", "quality"),
    FLIP_ABLATION: ("release_size", "means_over_seeds", "intervals", "data_quality"),
}


def tables_markdown(instance: DagsterInstance, asset: str) -> str | None:
    """The asset's tables from its latest materialization, or None when it has none."""
    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None:
        return None
    materialization = event.asset_materialization
    metadata = materialization.metadata
    when = event.timestamp
    parts = [f"## {asset} (run {event.run_id[:8]}, materialized at unix time {when:.0f})"]
    for name in TABLES[asset]:
        if name in metadata:
            # Inline images are the UI's; the PNG files lie beside the asset's Parquet.
            text = "\n".join(line for line in str(metadata[name].value).splitlines() if not line.startswith("!["))
            parts.append(f"### {name}\n\n{text.strip()}")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flip_assets.tools.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--asset", choices=sorted(TABLES), action="append", help="an asset whose tables to print (default: both)")
    args = parser.parse_args(argv)
    with DagsterInstance.get() as instance:
        for asset in args.asset or list(TABLES):
            text = tables_markdown(instance, asset)
            if text is None:
                print(f"{asset} has no materialization on this instance ($DAGSTER_HOME): materialize it first", file=sys.stderr)
                return 1
            print(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
