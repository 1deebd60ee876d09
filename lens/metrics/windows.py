"""Windowed SLA assertions: ``{assert: "ttft.p95 < 500ms", window: 60s, allow: 1}``.

The measured phase of each stage x provider is cut into windows of ``window`` seconds from
its start (the start of the whole stage when it pools warmup, ``sla_includes_warmup``), up
to the last measured request's dispatch.  A request belongs to the window it was
*dispatched* in (each attempt of a retried request to its own), whenever it ended, so a
slow window is the one whose requests were slow, not the one they finished in.  The last
window may be shorter than the others: choose a window that divides the stage's duration.

Each window is summarised like a stage (``lens.metrics.summary``) and judged like one
(``lens.metrics.judge``): too few samples for the statistic make a window inconclusive,
never a pass.  With ``allow: K`` the assertion fails when more than K windows failed, is
inconclusive when the inconclusive windows could still make it fail (failed +
inconclusive > K), and passes otherwise.  A stage x provider in which no measured request
was dispatched has no window: inconclusive.

Only statistics that mean the same over a window as over a stage can be windowed:
per-request statistics, and the shares and counts of requests (``error_rate``,
``success_rate``, ``requests``, ``errors``); rates per second of stage time cannot
(``lens.scenario.sla.WINDOWED_STAGE_METRICS``, checked when the scenario loads).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from lens.metric_catalog import REQUEST_METRICS, STAGE_METRICS
from lens.metrics.judge import (
    Outcome,
    Verdict,
    WindowedVerdict,
    WindowResult,
    format_value,
    judge,
    judge_one,
)
from lens.metrics.summary import StageAccumulator, StageKey, Summary, Window
from lens.plan.model import ProviderSpec, SlaSpec
from lens.records import RequestRecord

NS_PER_S = 1_000_000_000


def window_index(t_dispatch: int, origin_ns: int, window_ns: int) -> int:
    """The window a request dispatched at ``t_dispatch`` belongs to (the first for one
    dispatched before the measured phase began: a closed loop's barrier)."""
    return max(t_dispatch - origin_ns, 0) // window_ns


def combine(windows: Sequence[Outcome], allow: int) -> Outcome:
    """The assertion's outcome from its windows' outcomes."""
    if not windows:
        return "inconclusive"
    failed = windows.count("fail")
    if failed > allow:
        return "fail"
    if failed + windows.count("inconclusive") > allow:
        return "inconclusive"
    return "pass"


def judge_all(
    slas: Sequence[SlaSpec],
    summaries: Sequence[Summary],
    records: Iterable[RequestRecord],
    spans: Mapping[StageKey, Window],
    *,
    providers: Mapping[str, ProviderSpec] | None = None,
    pooled: frozenset[str] = frozenset(),
) -> tuple[Verdict, ...]:
    """Verdicts in SLA order: plain assertions on ``summaries`` (``judge``), windowed ones
    on the ``records`` of each matching stage x provider, windows cut from the start of
    its ``spans`` entry (its measured span: ``lens.pipeline.summarise``'s windows)."""
    windowed = [spec for spec in slas if spec.window_s is not None]
    by_key = _measured_by_key(records, pooled) if windowed else {}
    out: list[Verdict] = []
    for spec in slas:
        matched = [s for s in summaries if spec.applies_to(s.stage, s.provider)]
        if spec.window_s is None or not matched:
            out.extend(judge([spec], summaries))
            continue
        for s in matched:
            key = (s.stage, s.provider)
            spec_of = (providers or {}).get(s.provider)
            out.append(judge_windows(spec, s, by_key.get(key, []), spans.get(key), spec_of))
    return tuple(out)


def _measured_by_key(
    records: Iterable[RequestRecord], pooled: frozenset[str]
) -> dict[StageKey, list[RequestRecord]]:
    out: dict[StageKey, list[RequestRecord]] = {}
    for rec in records:
        if rec.phase == "measure" or rec.stage in pooled:
            out.setdefault((rec.stage, rec.provider), []).append(rec)
    return out


def judge_windows(
    spec: SlaSpec,
    summary: Summary,
    records: Sequence[RequestRecord],
    span: Window | None,
    provider: ProviderSpec | None = None,
) -> Verdict:
    """One windowed assertion on one stage x provider: its ``records`` (measured ones)
    judged window by window."""
    assert spec.window_s is not None
    window_ns = max(round(spec.window_s * NS_PER_S), 1)
    plain = replace(spec, window_s=None)
    base = replace(
        judge_one(plain, summary),
        window=WindowedVerdict.of(spec.window_s, spec.allow, ()),
        value=None,
        n=0,
    )
    counted = [r for r in records if r.t_dispatch is not None]
    if span is None or not counted:
        why = "no stage window was recorded" if span is None else "no measured request was sent"
        return replace(base, outcome="inconclusive", reason=f"{why}: no window to judge")
    origin = span[0]
    last = max(window_index(r.t_dispatch, origin, window_ns) for r in counted)
    groups: list[StageAccumulator] = [
        StageAccumulator(summary.stage, summary.provider, spec=provider) for _ in range(last + 1)
    ]
    for rec in counted:
        groups[window_index(rec.t_dispatch, origin, window_ns)].add(rec)
    results: list[WindowResult] = []
    for k, acc in enumerate(groups):
        start, end = origin + k * window_ns, origin + (k + 1) * window_ns
        v = judge_one(plain, acc.summary((start, end)))
        results.append(
            WindowResult(
                index=k,
                start_s=k * window_ns / NS_PER_S,
                end_s=(k + 1) * window_ns / NS_PER_S,
                outcome=v.outcome,
                value=v.value,
                n=v.n,
                reason=v.reason,
            )
        )
    outcome = combine([w.outcome for w in results], spec.allow)
    return replace(
        base,
        outcome=outcome,
        value=_worst(plain, results),
        n=sum(w.n for w in results),
        reason=_reason(spec, results, outcome),
        window=WindowedVerdict.of(spec.window_s, spec.allow, results),
    )


def _worst(spec: SlaSpec, windows: Sequence[WindowResult]) -> float | None:
    """The value furthest on the failing side among windows judged conclusively."""
    values = [w.value for w in windows if w.value is not None and w.outcome != "inconclusive"]
    if not values:
        return None
    return max(values) if spec.expr.op in ("<", "<=") else min(values)


def _span_text(w: WindowResult) -> str:
    return f"#{w.index} [{w.start_s:g}s-{w.end_s:g}s]"


def _reason(spec: SlaSpec, windows: Sequence[WindowResult], outcome: Outcome) -> str:
    assert spec.window_s is not None
    failed = [w for w in windows if w.outcome == "fail"]
    unsure = [w for w in windows if w.outcome == "inconclusive"]
    head = (
        f"{len(failed)} of {len(windows)} windows of {spec.window_s:g}s failed "
        f"(allow {spec.allow}), {len(unsure)} inconclusive"
    )
    parts = [head]
    label = spec.expr.label
    if failed:
        unit = _unit_of(spec)
        shown = ", ".join(
            f"{_span_text(w)} {label} = {'-' if w.value is None else format_value(w.value, unit)}"
            for w in failed
        )
        parts.append(f"failed: {shown}")
    if unsure:
        parts.append("inconclusive: " + ", ".join(f"{_span_text(w)} {w.reason}" for w in unsure))
    if outcome == "inconclusive":
        parts.append("the inconclusive windows could decide it")
    return "; ".join(parts)


def _unit_of(spec: SlaSpec) -> str:
    if spec.expr.stat == "n":
        return "count"
    info = REQUEST_METRICS.get(spec.expr.metric) or STAGE_METRICS.get(spec.expr.metric)
    return "" if info is None else info.unit
