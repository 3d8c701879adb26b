"""Benchmarks: each prints JSON lines comparing a pipeline code path with the bare model.

They measure with the pipeline's settings: `pipeline_resource` builds a resource as `make
pipeline` does (defs/resources.py), so an environment variable changes both alike and no
benchmark keeps a default of its own.
"""

import atexit
import contextlib

# The resources handed out, torn down (their teardown, as after a run's step) when the benchmark exits.
_OPEN = contextlib.ExitStack()
atexit.register(_OPEN.close)


def pipeline_resource(key: str):
    """The pipeline's resource `key`, its environment variables resolved and its settings checked."""
    from flip_assets.defs.resources import build_resources

    return _OPEN.enter_context(build_resources()[key].process_config_and_initialize_cm())
