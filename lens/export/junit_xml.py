"""JUnit XML documents from plain ``Case`` values: SLA verdicts (``lens.export.junit``) and
``lens compare``'s checks (``lens.export.comparison``) report the same way, and a run
judged against a baseline carries both as two suites of one document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


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


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    cases: Sequence[Case]


def _element(case: Case) -> ET.Element:
    el = ET.Element("testcase", name=case.name, classname=case.classname, time="0")
    if case.outcome == "failure":
        failure = ET.SubElement(el, "failure", message=case.message, type=case.failure_type)
        failure.text = case.detail
    elif case.outcome == "skipped":
        ET.SubElement(el, "skipped", message=case.message)
    return el


def _counts(cases: Sequence[Case]) -> dict[str, str]:
    return {
        "tests": str(len(cases)),
        "failures": str(sum(c.outcome == "failure" for c in cases)),
        "errors": "0",
        "skipped": str(sum(c.outcome == "skipped" for c in cases)),
    }


def junit_suites(suites: Sequence[Suite], *, timestamp: str = "", hostname: str = "") -> str:
    """A ``<testsuites>`` document, one ``<testsuite>`` per ``Suite``; the root's counts
    add up the suites'."""
    root = ET.Element(
        "testsuites", attrib={"name": "lens", **_counts([c for s in suites for c in s.cases])}
    )
    for suite in suites:
        attrib = {"name": suite.name}
        if timestamp:
            attrib["timestamp"] = timestamp
        if hostname:
            attrib["hostname"] = hostname
        attrib.update(_counts(suite.cases))
        element = ET.SubElement(root, "testsuite", attrib=attrib)
        element.extend(_element(c) for c in suite.cases)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def junit_document(
    suite: str, cases: Sequence[Case], *, timestamp: str = "", hostname: str = ""
) -> str:
    """A ``<testsuites>`` document holding one suite named ``suite`` with ``cases``."""
    return junit_suites([Suite(suite, cases)], timestamp=timestamp, hostname=hostname)
