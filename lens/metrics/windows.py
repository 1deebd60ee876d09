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
    window_ns = _window_ns(spec)
    base = _base_verdict(spec, summary)
    counted = [r for r in records if r.t_dispatch is not None]
    if span is None or not counted:
        why = "no stage window was recorded" if span is None else "no measured request was sent"
        return replace(base, outcome="inconclusive", reason=f"{why}: no window to judge")
    origin = span[0]
    groups: dict[int, StageAccumulator] = {}
    for rec in counted:
        k = window_index(rec.t_dispatch, origin, window_ns)
        acc = groups.get(k)
        if acc is None:
            acc = groups[k] = StageAccumulator(summary.stage, summary.provider, spec=provider)
        acc.add(rec)
    return _judge_groups(spec, base, summary, groups, origin, window_ns, provider)


def _base_verdict(spec: SlaSpec, summary: Summary) -> Verdict:
    assert spec.window_s is not None
    return replace(
        judge_one(replace(spec, window_s=None), summary),
        window=WindowedVerdict.of(spec.window_s, spec.allow, ()),
        value=None,
        n=0,
    )


def _judge_groups(
    spec: SlaSpec,
    base: Verdict,
    summary: Summary,
    groups: Mapping[int, StageAccumulator],
    origin: int,
    window_ns: int,
    provider: ProviderSpec | None,
) -> Verdict:
    """The verdict of ``spec`` from its windows' accumulators (index -> accumulator; a
    window no request was dispatched in is judged empty)."""
    assert spec.window_s is not None
    plain = replace(spec, window_s=None)
    last = max(groups)
    results: list[WindowResult] = []
    for k in range(last + 1):
        acc = groups.get(k) or StageAccumulator(summary.stage, summary.provider, spec=provider)
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


class WindowFeed:
    """The windows of ``judge_all`` filled as records finish, in memory bounded by the
    number of windows (one ``StageAccumulator`` each) rather than of records.  Each record
    comes with the start of its unit's windows (``origin_ns``: the measured phase's start,
    or the unit's when it pools warmup), which the run knows by the time a measured record
    ends (``lens.run.slastop.SlaStop(follow=...)``); ``judge`` checks it against the
    spans the run ended with."""

    def __init__(
        self,
        slas: Sequence[SlaSpec],
        providers: Mapping[str, ProviderSpec],
        pooled: frozenset[str] = frozenset(),
    ) -> None:
        self.windowed = tuple(s for s in slas if s.window_s is not None)
        self.providers = providers
        self.pooled = pooled
        self._sizes: dict[StageKey, tuple[int, ...]] = {}  # window lengths of each unit
        self._groups: dict[tuple[StageKey, int], dict[int, StageAccumulator]] = {}
        self.origins: dict[StageKey, int] = {}

    def _sizes_of(self, key: StageKey) -> tuple[int, ...]:
        sizes = self._sizes.get(key)
        if sizes is None:
            sizes = self._sizes[key] = tuple(
                dict.fromkeys(_window_ns(s) for s in self.windowed if s.applies_to(key[0], key[1]))
            )
        return sizes

    def add(self, rec: RequestRecord, origin_ns: int) -> None:
        if not self.windowed or not (rec.phase == "measure" or rec.stage in self.pooled):
            return
        key = (rec.stage, rec.provider)
        sizes = self._sizes_of(key)
        if not sizes:
            return
        self.origins.setdefault(key, origin_ns)
        for window_ns in sizes:
            groups = self._groups.setdefault((key, window_ns), {})
            k = window_index(rec.t_dispatch, origin_ns, window_ns)
            acc = groups.get(k)
            if acc is None:
                acc = groups[k] = StageAccumulator(
                    rec.stage, rec.provider, spec=self.providers.get(rec.provider)
                )
            acc.add(rec)

    def judge(
        self,
        slas: Sequence[SlaSpec],
        summaries: Sequence[Summary],
        spans: Mapping[StageKey, Window],
    ) -> tuple[Verdict, ...]:
        """``judge_all``'s verdicts, from the windows fed."""
        out: list[Verdict] = []
        for spec in slas:
            matched = [s for s in summaries if spec.applies_to(s.stage, s.provider)]
            if spec.window_s is None or not matched:
                out.extend(judge([spec], summaries))
                continue
            for s in matched:
                key = (s.stage, s.provider)
                provider = self.providers.get(s.provider)
                window_ns = _window_ns(spec)
                base = _base_verdict(spec, s)
                span = spans.get(key)
                groups = self._groups.get((key, window_ns))
                if span is None or not groups:
                    why = (
                        "no stage window was recorded"
                        if span is None
                        else "no measured request was sent"
                    )
                    out.append(
                        replace(base, outcome="inconclusive", reason=f"{why}: no window to judge")
                    )
                    continue
                if self.origins[key] != span[0]:
                    raise RuntimeError(
                        f"windows of {key[0]}/{key[1]} were cut from {self.origins[key]} ns, "
                        f"the unit's measured span starts at {span[0]} ns"
                    )
                out.append(_judge_groups(spec, base, s, groups, span[0], window_ns, provider))
        return tuple(out)


def _window_ns(spec: SlaSpec) -> int:
    assert spec.window_s is not None
    return max(round(spec.window_s * NS_PER_S), 1)
