"""JUnit XML: one ``<testcase>`` per SLA verdict, for CI test-report views.

``name`` is the assertion and its scope (``ttft.p95 < 800ms [stage=warm provider=sim]``),
``classname`` is ``scenario.stage.provider``.  A failed verdict carries ``<failure>`` with
the measured value and the threshold; an inconclusive one is ``<skipped>`` with its reason.

Results judged against a baseline (``lens run --baseline``) carry a second suite with one
case per regression check, as ``lens compare --export junit=`` writes them.
"""

from __future__ import annotations

from pathlib import Path

from lens.export.comparison import comparison_suite
from lens.export.junit_xml import Case, Suite, junit_suites
from lens.export.results import Results
from lens.export.sink import write_atomic
from lens.metrics.judge import Verdict, measured_text
from lens.targets import ExportTarget


def _case(results: Results, v: Verdict) -> Case:
    stage, provider = v.stage or "all", v.provider or "all"
    name = f"{v.sla} [stage={stage} provider={provider}]"
    classname = f"{results.scenario}.{stage}.{provider}"
    if v.outcome == "fail":
        detail = (
            f"measured {v.label} = {measured_text(v.label, v.value)}; threshold {v.op} "
            f"{measured_text(v.label, v.threshold)}; "
            f"n = {v.n}; assertion at {v.where or 'unknown'}"
        )
        return Case(name, classname, "failure", v.reason, detail)
    if v.outcome == "inconclusive":
        return Case(name, classname, "skipped", v.reason)
    return Case(name, classname, "pass")


def junit_xml(results: Results) -> str:
    suites = [Suite(f"lens SLA: {results.scenario}", [_case(results, v) for v in results.verdicts])]
    if results.regressions is not None:
        suites.append(comparison_suite(results.regressions))
    return junit_suites(
        suites, timestamp=results.environment.started_at, hostname=results.environment.hostname
    )


def export_junit(results: Results, target: ExportTarget) -> None:
    write_atomic(Path(target.dest), junit_xml(results))
