"""Great Expectations 1.x suites run on an in-memory DataFrame, for schema and value checks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

# No usage analytics: nothing may wait on the network.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass
class SuiteResult:
    success: bool
    failures: dict[str, int]  # failing expectation (with column) -> unexpected count


@lru_cache(maxsize=1)
def _batch_definition():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("flip")
    return source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("whole")


def validate(df: pd.DataFrame, name: str, expectations: list) -> SuiteResult:
    """Validate df against a list of `great_expectations.expectations.*` objects."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    result = _batch_definition().get_batch(batch_parameters={"dataframe": df}).validate(suite)
    failures = {}
    for r in result.results:
        if not r.success:
            cfg = r.expectation_config
            column = cfg.kwargs.get("column")
            label = f"{cfg.type}({column})" if column else cfg.type
            failures[label] = int(r.result.get("unexpected_count") or 0)
    return SuiteResult(success=bool(result.success), failures=failures)
