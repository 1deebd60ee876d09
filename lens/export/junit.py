"""JUnit XML: one ``<testcase>`` per SLA verdict, for CI test-report views.

``name`` is the assertion and its scope (``ttft.p95 < 800ms [stage=warm provider=sim]``),
``classname`` is ``scenario.stage.provider``.  A failed verdict carries ``<failure>`` with
the measured value and the threshold; an inconclusive one is ``<skipped>`` with its reason.

``junit_document`` builds the document from plain ``Case`` values, so other checks
(``lens compare``'s regressions) report the same way.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lens.export.results import Results
from lens.export.sink import write_atomic
from lens.metrics.judge import Verdict, measured_text
from lens.targets import ExportTarget


@dataclass(frozen=True, slots=True)
class Case:
    """One ``<testcase>``: ``failure`` carries ``message`` and ``detail`` (its text),
    ``skipped`` the message alone."""

    name: str
    classname: str
    outcome: Literal["pass", "failure", "skipped"]
    message: str = ""
    detail: str = ""
    failure_type: str = "SLAFailure"


def _element(case: Case) -> ET.Element:
    el = ET.Element("testcase", name=case.name, classname=case.classname, time="0")
    if case.outcome == "failure":
        failure = ET.SubElement(el, "failure", message=case.message, type=case.failure_type)
        failure.text = case.detail
    elif case.outcome == "skipped":
        ET.SubElement(el, "skipped", message=case.message)
    return el


def junit_document(
    suite: str, cases: Sequence[Case], *, timestamp: str = "", hostname: str = ""
) -> str:
    """A ``<testsuites>`` document holding one suite named ``suite`` with ``cases``."""
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(c.outcome == "failure" for c in cases)),
        "errors": "0",
        "skipped": str(sum(c.outcome == "skipped" for c in cases)),
    }
    suites = ET.Element("testsuites", attrib={"name": "lens", **counts})
    attrib = {"name": suite}
    if timestamp:
        attrib["timestamp"] = timestamp
    if hostname:
        attrib["hostname"] = hostname
    attrib.update(counts)
    element = ET.SubElement(suites, "testsuite", attrib=attrib)
    element.extend(_element(c) for c in cases)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


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
    return junit_document(
        f"lens SLA: {results.scenario}",
        [_case(results, v) for v in results.verdicts],
        timestamp=results.environment.started_at,
        hostname=results.environment.hostname,
    )


def export_junit(results: Results, target: ExportTarget) -> None:
    write_atomic(Path(target.dest), junit_xml(results))
