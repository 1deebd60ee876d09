"""JUnit XML: one ``<testcase>`` per SLA verdict, for CI test-report views.

``name`` is the assertion and its scope (``ttft.p95 < 800ms [stage=warm provider=sim]``),
``classname`` is ``scenario.stage.provider``.  A failed verdict carries ``<failure>`` with
the measured value and the threshold; an inconclusive one is ``<skipped>`` with its reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from lens.export.results import Results
from lens.export.sink import write_atomic
from lens.metrics.judge import Verdict, measured_text
from lens.targets import ExportTarget


def _testcase(results: Results, v: Verdict) -> ET.Element:
    stage, provider = v.stage or "all", v.provider or "all"
    case = ET.Element(
        "testcase",
        name=f"{v.sla} [stage={stage} provider={provider}]",
        classname=f"{results.scenario}.{stage}.{provider}",
        time="0",
    )
    if v.outcome == "fail":
        failure = ET.SubElement(case, "failure", message=v.reason, type="SLAFailure")
        failure.text = (
            f"measured {v.label} = {measured_text(v.label, v.value)}; threshold {v.op} "
            f"{measured_text(v.label, v.threshold)}; "
            f"n = {v.n}; assertion at {v.where or 'unknown'}"
        )
    elif v.outcome == "inconclusive":
        ET.SubElement(case, "skipped", message=v.reason)
    return case


def junit_xml(results: Results) -> str:
    cases = [_testcase(results, v) for v in results.verdicts]
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(v.outcome == "fail" for v in results.verdicts)),
        "errors": "0",
        "skipped": str(sum(v.outcome == "inconclusive" for v in results.verdicts)),
    }
    suites = ET.Element("testsuites", attrib={"name": "lens", **counts})
    suite = ET.SubElement(
        suites,
        "testsuite",
        attrib={
            "name": f"lens SLA: {results.scenario}",
            "timestamp": results.environment.started_at,
            "hostname": results.environment.hostname,
            **counts,
        },
    )
    suite.extend(cases)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def export_junit(results: Results, target: ExportTarget) -> None:
    write_atomic(Path(target.dest), junit_xml(results))
