"""flip_release of one shard in a process of its own, on a real instance (DAGSTER_HOME), as the
CLI or the main command would run it: the concurrency and kill tests start it.

    python release_run.py FLIP_HOME SHARD [--blocklist FILE] [--hold S] [--kill-at-publish N]

--hold sleeps after the release file is staged, so that two runs overlap there; --kill-at-publish
ends the process (as kill -9 would) just before the N-th staged file of the release pair is put
in place. Both act on file operations only, so they work whatever the publishing code looks like.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PAIR = ("flip_release", "release_exclusions")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("home")
    parser.add_argument("shard")
    parser.add_argument("--blocklist")
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--kill-at-publish", type=int, default=0)
    args = parser.parse_args()

    from dagster import DagsterInstance, materialize

    from flip_assets.core.io import storage
    from flip_assets.defs.release.assets import flip_release
    from flip_assets.defs.release.resources import ReleaseResource
    from flip_assets.defs.storage import FlipStorage

    write_table, replace, published = storage.write_table, os.replace, [0]

    def held_write(path, table):
        out = write_table(path, table)
        if Path(path).parent.name == storage.STAGING_DIR and Path(path).parent.parent.name == "flip_release":
            time.sleep(args.hold)
        return out

    def counted_replace(src, dst, *a, **kw):
        src, dst = Path(src), Path(dst)
        if args.kill_at_publish and dst.suffix == ".parquet" and dst.parent.name in PAIR and src.parent.name == storage.STAGING_DIR:
            published[0] += 1
            if published[0] == args.kill_at_publish:
                os._exit(9)
        return replace(src, dst, *a, **kw)

    storage.write_table = held_write
    os.replace = counted_replace
    resources = {"flip_storage": FlipStorage(home=args.home), "release": ReleaseResource(blocklist=args.blocklist)}
    with DagsterInstance.get() as instance:
        result = materialize([flip_release], resources=resources, instance=instance, partition_key=args.shard, raise_on_error=False)
    print(f"RUN {result.run_id} {'success' if result.success else 'failure'}", flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
