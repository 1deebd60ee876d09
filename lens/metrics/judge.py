"""SLA assertions x summaries -> verdicts: pass, fail, or inconclusive with a reason.

An SLA applies to every stage x provider its optional ``provider``/``stage`` scope
matches, giving one ``Verdict`` per pair; an SLA that matches nothing yields one
inconclusive verdict, so a typo in a scope can never read as a pass.

Inconclusive is its own outcome, not a soft pass: a statistic that rests on no values
(``ttft`` when every request failed), or on fewer than its ``MIN_SAMPLES`` (a p99 of 20
values is just the maximum), or a rate over zero started requests, does not show the
SLA holds.  The exceptions are counts of what was run (``requests``, ``<metric>.n``):
zero is a measurement there, so ``requests >= 100`` fails on an empty stage.

Thresholds are canonical units (ms for times, fractions for ratios), as parsed by
``lens.scenario.sla``; reasons print ratios as percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from pydantic import Field

from lens import exitcodes
from lens.metric_catalog import CATALOGUE, REQUEST_METRICS, STAGE_METRICS
from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.summary import Summary
from lens.plan.model import SlaSpec
from lens.pricing.money import usd_text

Outcome = Literal["pass", "fail", "inconclusive"]

EXIT_PASS = exitcodes.OK
EXIT_FAIL = exitcodes.SLA_FAILED
EXIT_INCONCLUSIVE = exitcodes.INCONCLUSIVE

# Counts whose value is meaningful even when nothing was measured.
_COUNT_METRICS = frozenset({"requests"})

# Why a metric may have been measured by no request at all, from its catalogue entry.
_NEVER_MEASURED_HINTS: dict[str, str] = {m.name: m.unmeasured for m in CATALOGUE if m.unmeasured}
# Statistics the summary holds as exact decimals whatever the sketch (see Summary.get).
_EXACT_STATS = frozenset({("cost", "total"), ("cost", "mean")})


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window of a windowed assertion (``lens.metrics.windows``): its span in seconds
    from the start of the stage's measured phase, and the assertion's outcome there."""

    __pydantic_config__ = RESULTS_VALUE

    index: int
    start_s: Annotated[float, Field(description="from the start of the measured phase")]
    end_s: float
    outcome: Outcome
    value: float | None
    n: int
    reason: str


@dataclass(frozen=True, slots=True)
class WindowedVerdict:
    """A windowed assertion's windows: it fails when more than ``allow`` failed."""

    __pydantic_config__ = RESULTS_VALUE

    seconds: Annotated[float, Field(description="window length")]
    allow: Annotated[int, Field(description="how many windows may fail")]
    passed: int
    failed: int
    inconclusive: int
    windows: Annotated[
        tuple[WindowResult, ...],
        Field(description="window by window, requests by dispatch time"),
    ]

    @classmethod
    def of(cls, seconds: float, allow: int, windows: Sequence[WindowResult]) -> WindowedVerdict:
        def count(outcome: Outcome) -> int:
            return sum(1 for w in windows if w.outcome == outcome)

        return cls(
            seconds, allow, count("pass"), count("fail"), count("inconclusive"), tuple(windows)
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one SLA assertion on one stage x provider (or on nothing)."""

    __pydantic_config__ = RESULTS_VALUE

    sla: str  # the assertion as written, e.g. "ttft.p95 < 800ms"
    label: str  # metric[.stat], e.g. "ttft.p95"
    op: str
    threshold: float  # canonical unit
    provider: str | None  # the matched summary's, or the SLA's scope when none matched
    stage: str | None
    outcome: Outcome
    value: float | None  # measured value, also when inconclusive for too few samples
    n: int  # values the statistic rests on
    reason: str
    exact: bool = True  # False when the value is a t-digest estimate
    where: str = ""  # file:line:col of the assertion
    window: Annotated[
        WindowedVerdict | None,
        Field(
            description="a windowed assertion (window:, allow:): judged per window of the "
            "measured phase; fails when more than allow windows fail"
        ),
    ] = None
    stopped_run: Annotated[
        bool,
        Field(description="stop_on_fail: this failure ended the run early (interrupted_by sla)"),
    ] = False

    @property
    def scope(self) -> str:
        parts = [
            f"provider={self.provider}" if self.provider is not None else "",
            f"stage={self.stage}" if self.stage is not None else "",
        ]
        return " ".join(p for p in parts if p) or "all"

    @property
    def assertion(self) -> str:
        """The SLA assertion as written, e.g. ``ttft.p95 < 500ms`` (the ``sla`` field)."""
        return self.sla

    @property
    def status(self) -> Outcome:
        """The verdict (the ``outcome`` field)."""
        return self.outcome


def _unit(metric: str, stat: str | None) -> str:
    if stat == "n":
        return "count"
    info = REQUEST_METRICS.get(metric) or STAGE_METRICS.get(metric)
    return info.unit if info is not None else ""


def measured_text(label: str, value: float | None) -> str:
    """A verdict's measured value in the unit its assertion is written in (``20%`` for an
    error rate, ``$0.0000274`` for a cost), ``-`` when nothing was measured."""
    if value is None:
        return "-"
    metric, _, stat = label.partition(".")
    return format_value(value, _unit(metric, stat or None))


def format_value(value: float, unit: str) -> str:
    """Human form of a canonical value: ratios as %, times with their unit."""
    if unit == "ratio":
        return f"{_num(value * 100)}%"
    if unit == "usd":
        # Six significant digits: a verdict repeats thresholds as the user wrote them.
        return usd_text(value, digits=6)
    if unit in ("", "count"):
        return _num(value)
    return f"{_num(value)} {unit}"


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _matches(spec: SlaSpec, summary: Summary) -> bool:
    return spec.applies_to(summary.stage, summary.provider)


def _judge_one(spec: SlaSpec, summary: Summary) -> Verdict:
    expr = spec.expr
    label, unit = expr.label, _unit(expr.metric, expr.stat)

    def verdict(
        outcome: Outcome, reason: str, value: float | None, n: int, exact: bool = True
    ) -> Verdict:
        return Verdict(
            sla=expr.text,
            label=label,
            op=expr.op,
            threshold=expr.threshold,
            provider=summary.provider,
            stage=summary.stage,
            outcome=outcome,
            value=value,
            n=n,
            reason=reason,
            exact=exact,
            where=spec.where,
        )

    try:
        value = summary.get(expr.metric, expr.stat)
        n = summary.samples(expr.metric, expr.stat)
    except KeyError as exc:
        return verdict("inconclusive", f"cannot evaluate {label}: {exc.args[0]}", None, 0)
    is_request_metric = expr.metric in summary.metrics
    exact = (
        summary.metrics[expr.metric].exact
        if is_request_metric and (expr.metric, expr.stat) not in _EXACT_STATS
        else True
    )
    is_count = expr.metric in _COUNT_METRICS or expr.stat == "n"

    if not is_count:
        if summary.requests == 0:
            return verdict(
                "inconclusive", f"no requests were started: {label} is undefined", value, n
            )
        if is_request_metric and n == 0:
            if summary.ok == 0:
                why = (
                    f"no successful requests ({summary.errors} of {summary.requests} "
                    f"failed): {expr.metric} was never measured"
                )
            else:
                hint = _NEVER_MEASURED_HINTS.get(expr.metric, "")
                why = f"{expr.metric} was never measured in {summary.ok} successful requests" + (
                    f": {hint}" if hint else ""
                )
            return verdict("inconclusive", why, None, 0)
        if n < expr.min_samples:
            return verdict(
                "inconclusive",
                f"{expr.stat} needs >= {expr.min_samples} samples, got {n}",
                value,
                n,
                exact,
            )
        if value is None:
            return verdict(
                "inconclusive",
                f"{label} could not be computed ({_uncomputed(expr.metric, summary)})",
                None,
                n,
            )
    assert value is not None  # counts are never None
    shown = f"{label} = {format_value(value, unit)}"
    limit = format_value(expr.threshold, unit)
    note = f" (t-digest estimate over {n} values)" if not exact else ""
    if expr.holds(value):
        return verdict("pass", f"{shown} {expr.op} {limit}{note}", value, n, exact)
    return verdict("fail", f"{shown}, not {expr.op} {limit}{note}", value, n, exact)


def judge_one(spec: SlaSpec, summary: Summary) -> Verdict:
    """The verdict of ``spec`` on ``summary`` (its scope not checked), read as a plain
    assertion: ``lens.metrics.windows`` judges each window's summary with it."""
    return _judge_one(spec, summary)


def judge(slas: Sequence[SlaSpec], summaries: Sequence[Summary]) -> tuple[Verdict, ...]:
    """One verdict per SLA x matching summary, in SLA order then summary order.  A repeated
    stage is judged on its pooled summary (every repetition's requests), never on one
    repetition's: those are there to show the run-to-run spread.

    A windowed assertion needs the records (``lens.metrics.windows.judge_all``); from
    summaries alone it is inconclusive."""
    out: list[Verdict] = []
    for spec in slas:
        if spec.window_s is not None:
            out.extend(
                replace(
                    v,
                    outcome="inconclusive",
                    reason="a windowed assertion is judged from the run's records, "
                    "not from summaries",
                    window=WindowedVerdict.of(spec.window_s, spec.allow, ()),
                )
                for v in judge([replace(spec, window_s=None)], summaries)
            )
            continue
        matched = [s for s in summaries if s.repetition is None and _matches(spec, s)]
        if not matched:
            expr = spec.expr
            out.append(
                Verdict(
                    sla=expr.text,
                    label=expr.label,
                    op=expr.op,
                    threshold=expr.threshold,
                    provider=spec.provider,
                    stage=spec.stage,
                    outcome="inconclusive",
                    value=None,
                    n=0,
                    reason=f"no stage x provider matches {spec.scope}",
                    where=spec.where,
                )
            )
            continue
        out.extend(_judge_one(spec, s) for s in matched)
    return tuple(out)


def exit_code(verdicts: Sequence[Verdict]) -> int:
    """0 when everything passed (or nothing was asserted), 1 on any fail, 3 when only
    inconclusive verdicts stand between the run and a pass."""
    outcomes = {v.outcome for v in verdicts}
    if "fail" in outcomes:
        return EXIT_FAIL
    if "inconclusive" in outcomes:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


def run_exit_code(verdicts: Sequence[Verdict], *, partial: bool, failed: bool = False) -> int:
    """The run's exit code: 5 when lens itself failed, else the verdicts', except that an
    interrupted run cannot pass: at best 3."""
    if failed:
        return exitcodes.LENS_FAILED
    code = exit_code(verdicts)
    return exitcodes.INCONCLUSIVE if partial and code == exitcodes.OK else code


def distrust(verdicts: Sequence[Verdict], reasons: Sequence[str]) -> tuple[Verdict, ...]:
    """The verdicts of a run whose measurements are suspect (an overloaded client):
    passes and fails both become inconclusive, keeping the measured value."""
    if not reasons:
        return tuple(verdicts)
    why = "measurements distorted by the client: " + "; ".join(reasons)
    return tuple(
        replace(v, outcome="inconclusive", reason=f"{why} ({v.reason})")
        if v.outcome != "inconclusive"
        else v
        for v in verdicts
    )


def _uncomputed(metric: str, summary: Summary) -> str:
    """Why a stage metric has no value: no window, or nothing of what it counts."""
    if summary.duration_s is None:
        return "no stage window was recorded"
    if metric == "inputs_per_s":
        return "no successful request carried embedding inputs"
    if metric == "throughput":
        return "no successful request generated output tokens (embeddings)"
    return "its stage window has no length"
