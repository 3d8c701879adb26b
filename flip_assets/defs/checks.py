"""Asset checks declared once, for every domain: a check's name, description, whether it blocks,
and how it is judged from the facts of the asset's check query.

An AssetChecks gives the asset decorator its specs and the asset body its results, so the two
never disagree on a name, and the UI shows every check's description beside its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

Facts = Mapping[str, Any]


@dataclass(frozen=True)
class Check:
    """Passes when every fact named in `zero` is 0 and `passed` (when given) holds. Its metadata
    are the `zero` and `report` facts and what `metadata` adds."""

    name: str
    description: str
    blocking: bool = False
    zero: tuple[str, ...] = ()
    report: tuple[str, ...] = ()
    passed: Callable[[Facts], bool] | None = None
    metadata: Callable[[Facts], dict] | None = None
    # A failure at WARN severity is noticed but never blocks, not even on a blocking check.
    severity: AssetCheckSeverity | Callable[[Facts], AssetCheckSeverity] = AssetCheckSeverity.ERROR

    def result(self, asset: str, facts: Facts) -> AssetCheckResult:
        passed = all(facts[name] == 0 for name in self.zero) and (self.passed is None or self.passed(facts))
        return AssetCheckResult(
            asset_key=asset,
            check_name=self.name,
            passed=bool(passed),
            severity=self.severity(facts) if callable(self.severity) else self.severity,
            metadata={
                **{name: facts[name] for name in self.zero + self.report},
                **(self.metadata(facts) if self.metadata else {}),
            },
        )


def expectations_pass(name: str, description: str) -> Check:
    """A blocking check that the Great Expectations suite result in facts["suite"] succeeded."""
    return Check(
        name, description, blocking=True,
        passed=lambda f: f["suite"].success, metadata=lambda f: {"failures": MetadataValue.json(f["suite"].failures)},
    )  # fmt: skip


class AssetChecks:
    """The checks of one asset: `specs` for its decorator, `results(facts)` for its MaterializeResult."""

    def __init__(self, asset: str, *checks: Check):
        self.asset, self.checks = asset, checks

    @property
    def specs(self) -> list[AssetCheckSpec]:
        return [
            AssetCheckSpec(check.name, asset=self.asset, description=check.description, blocking=check.blocking)
            for check in self.checks
        ]

    def results(self, facts: Facts) -> list[AssetCheckResult]:
        return [check.result(self.asset, facts) for check in self.checks]


def combine_check_results(by_shard: Mapping[str, list[AssetCheckResult]]) -> list[AssetCheckResult]:
    """One result per check for a run over several shards: it passes when it passed on every
    shard, at the worst severity among the failures; its metadata names the failing shards and
    holds the first failing shard's metadata (else the first shard's)."""
    combined = {}
    for shard, results in by_shard.items():
        for result in results:
            combined.setdefault(result.check_name, []).append((shard, result))
    out = []
    for name, pairs in combined.items():
        failing = [(shard, r) for shard, r in pairs if not r.passed]
        shown = (failing or pairs)[0][1]
        severity = AssetCheckSeverity.ERROR if any(r.severity == AssetCheckSeverity.ERROR for _, r in failing) else shown.severity
        out.append(AssetCheckResult(
            asset_key=shown.asset_key, check_name=name, passed=not failing, severity=severity,
            metadata={**shown.metadata, "shards": len(pairs), "failing_shards": MetadataValue.json([s for s, _ in failing])},
        ))  # fmt: skip
    return out
