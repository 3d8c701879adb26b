"""Benchmarks: each prints JSON lines comparing a pipeline code path with the bare model.

They measure with the pipeline's settings: `pipeline_resource` builds a resource as `make
pipeline` does (defs/resources.py), so an environment variable changes both alike and no
benchmark keeps a default of its own.
"""


def pipeline_resource(key: str):
    """The pipeline's resource `key`, its environment variables resolved and its settings checked."""
    from flip_assets.defs.resources import build_resources

    return build_resources()[key].process_config_and_initialize()
