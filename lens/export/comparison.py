"""Two results files compared (``lens compare``): what each side holds, and the comparison
as a console table, markdown (``$GITHUB_STEP_SUMMARY``, a PR comment), JSON and JUnit.

The statistics are ``lens.metrics.compare``'s; this module reads ``Results`` into its
``Side`` values with the summaries' counting rules (``lens.metrics.request``): measured
requests only (warmup and cooldown apart, unless the stage pools its warmup), latencies
and throughput from successful requests, ITL from each response's chunk offsets,
``cancelled`` and ``drained`` requests counted nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tabulate import tabulate

from lens.errors import InputError, Problem
from lens.export.junit_xml import Case, Suite, junit_suites
from lens.export.results import RecordOut, Results
from lens.export.sink import write_atomic
from lens.metrics.compare import (
    Check,
    Comparison,
    Options,
    Side,
    compare_sides,
    unmeasured,
)
from lens.metrics.request import icl_gaps, itl_gaps
from lens.pricing.money import usd_text
from lens.scenario.thresholds import (
    DEFAULT_CHECKS,
    Threshold,
    ThresholdError,
    check_label,
    default_threshold,
    parse_threshold,
)

_CUT_OFF = frozenset({"cancelled", "drained"})  # lens cut these off: not the server's outcome
# Per-request scalar fields of RecordOut, taken from successful requests only.
_OK_SCALARS = (
    "ttft",
    "ttfot",
    "ttfb",
    "e2e",
    "tpot",
    "ttft_from_intended",
    "e2e_from_intended",
    "output_tokens_per_s",
)
_TIMED_UNITS = frozenset({"ms", "tokens/s"})  # what an overloaded client measures wrongly
_MARK = {
    "regressed": "REGRESSED",
    "improved": "improved",
    "unchanged": "unchanged",
    "inconclusive": "INCONCLUSIVE",
}


# --- results -> sides ---------------------------------------------------------------------


def _cost(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(Decimal(text))
    except InvalidOperation:
        return None


def _values(records: Sequence[RecordOut]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}

    def add(name: str, values: list[float]) -> None:
        if values:
            out.setdefault(name, []).append(values)

    for r in records:
        lag = r.dispatch_lag
        add("dispatch_lag", [] if lag is None else [lag])
        add("cost", [] if (c := _cost(r.cost_usd)) is None else [c])
        if r.status != "ok":
            continue
        for name in _OK_SCALARS:
            value = getattr(r, name)
            add(name, [] if value is None else [value])
        if len(r.chunk_offsets) > 1:
            add("itl", itl_gaps(r.chunk_offsets, r.chunk_tokens))
            add("icl", icl_gaps(r.chunk_offsets))
    return out


def sides(results: Results) -> dict[tuple[str, str], Side]:
    """Each measured stage x provider of ``results``, with its records' values when the
    results hold records (``Side.values`` is None otherwise).  A repeated stage is one
    side, pooled (its repetitions are not compared one by one), with its spread."""
    # A repeated stage is compared pooled: its repetitions' records are the pooled
    # summary's, and their run-to-run spread widens its intervals (lens.metrics.compare).
    pooled_as = {s.stage: s.repetition.stage for s in results.summaries if s.repetition}
    spreads = {(r.stage, r.provider): r.spread for r in results.repetitions}
    grouped: dict[tuple[str, str], list[RecordOut]] = {}
    for r in results.records:
        if r.error_class not in _CUT_OFF:
            grouped.setdefault((pooled_as.get(r.stage, r.stage), r.provider), []).append(r)
    out: dict[tuple[str, str], Side] = {}
    for s in results.summaries:
        if s.phase != "measure" or s.repetition is not None:
            continue
        counted = grouped.get((s.stage, s.provider), [])
        measured = [r for r in counted if r.phase == "measure"]
        # A stage that pools its warmup (sla_includes_warmup) counts those requests too.
        chosen = counted if len(measured) != s.requests == len(counted) else measured
        values = _values(chosen) if chosen or s.requests == 0 else None
        out[(s.stage, s.provider)] = Side(
            stage=s.stage,
            provider=s.provider,
            model=s.model,
            requests=s.requests,
            errors=s.errors,
            stats=dict(s.metrics),
            values=values,
            spread=spreads.get((s.stage, s.provider), {}),
        )
    return out


def resolve_thresholds(
    thresholds: Mapping[str, str | float | Threshold] | None,
    statistics: Sequence[str] | None = None,
) -> list[tuple[str, Threshold]]:
    """The statistics to check, each with its threshold: ``statistics`` (default
    ``DEFAULT_CHECKS``) plus any other statistic ``thresholds`` names, in that order.
    ``InputError`` naming every threshold that does not parse."""
    given = dict(thresholds or {})
    labels = list(dict.fromkeys([*(statistics or DEFAULT_CHECKS), *given]))
    problems: list[Problem] = []
    out: list[tuple[str, Threshold]] = []
    for label in labels:
        try:
            check_label(label)
            raw = given.get(label)
            if raw is None:
                threshold = default_threshold(label)
            elif isinstance(raw, Threshold):
                threshold = raw
            else:
                threshold = parse_threshold(label, raw)
        except ThresholdError as exc:
            problems.append(Problem(f"threshold: {exc}"))
            continue
        out.append((label, threshold))
    if problems:
        raise InputError(problems)
    return out


def compare_results(
    baseline: Results,
    current: Results,
    *,
    checks: Sequence[tuple[str, Threshold]],
    stages: Iterable[str] | None = None,
    providers: Iterable[str] | None = None,
    options: Options | None = None,
    labels: tuple[str, str] = ("baseline", "current"),
) -> Comparison:
    """Compare every stage x provider both results hold (filtered by ``stages`` and
    ``providers``).  ``InputError`` for different schema versions, a filter naming an id
    neither file holds, or nothing left to compare."""
    if baseline.schema_version != current.schema_version:
        raise InputError(
            f"different results schema versions: {labels[0]} is {baseline.schema_version}, "
            f"{labels[1]} is {current.schema_version}"
        )
    options = options or Options()
    base, cur = sides(baseline), sides(current)
    only_stages = None if stages is None else set(stages)
    only_providers = None if providers is None else set(providers)
    _check_filter("stage", only_stages, {k[0] for k in (*base, *cur)})
    _check_filter("provider", only_providers, {k[1] for k in (*base, *cur)})

    def wanted(key: tuple[str, str]) -> bool:
        return (only_stages is None or key[0] in only_stages) and (
            only_providers is None or key[1] in only_providers
        )

    common = [k for k in base if k in cur and wanted(k)]
    only_base = tuple(f"{s}/{p}" for s, p in base if (s, p) not in cur and wanted((s, p)))
    only_cur = tuple(f"{s}/{p}" for s, p in cur if (s, p) not in base and wanted((s, p)))
    if not common:
        held = "; ".join(
            f"{label} holds {', '.join(f'{s}/{p}' for s, p in side) or 'nothing'}"
            for label, side in zip(labels, (base, cur), strict=True)
        )
        raise InputError(f"nothing to compare: no stage/provider is in both results ({held})")
    found: list[Check] = []
    not_compared: list[str] = []
    for key in common:
        found += compare_sides(base[key], cur[key], checks, options)
        not_compared += [
            f"{label} [{key[0]}/{key[1]}]"
            for label, _ in checks
            if unmeasured(base[key], cur[key], label)
        ]
    notes = []
    distorted = [
        f"{label}: {'; '.join(res.integrity.harness.reasons)}"
        for label, res in zip(labels, (baseline, current), strict=True)
        if res.integrity is not None
        and res.integrity.harness is not None
        and res.integrity.harness.status == "overloaded"
    ]
    if distorted:
        # As SLA verdicts (lens.metrics.judge.distrust): a client that could not keep up
        # measured itself, not the server, so no timing difference can be told.
        why = "measurements distorted by the client (" + "; ".join(distorted) + ")"
        found = [
            replace(c, outcome="inconclusive", reason=f"{why}: {c.reason}")
            if c.unit in _TIMED_UNITS
            else c
            for c in found
        ]
        notes.append(why)
    for label, side_map in zip(labels, (base, cur), strict=True):
        if any(side_map[k].values is None for k in common):
            notes.append(
                f"{label} holds no per-request records: its intervals come from the "
                "summaries (order statistics of the percentiles, Hoeffding for means; an "
                "approximation)"
            )
    if baseline.scenario != current.scenario:
        notes.append(
            f"different scenarios: {labels[0]} ran {baseline.scenario!r}, "
            f"{labels[1]} ran {current.scenario!r}"
        )
    for label, res in zip(labels, (baseline, current), strict=True):
        if res.partial:
            notes.append(f"{label} is a partial run (interrupted by {res.interrupted_by})")
    return Comparison(
        baseline=labels[0],
        current=labels[1],
        checks=tuple(found),
        only_in_baseline=only_base,
        only_in_current=only_cur,
        not_compared=tuple(not_compared),
        confidence=options.confidence,
        resamples=options.resamples,
        seed=options.seed,
        notes=tuple(notes),
    )


def _check_filter(what: str, asked: set[str] | None, held: set[str]) -> None:
    unknown = sorted((asked or set()) - held)
    if unknown:
        raise InputError(
            f"--{what} {', '.join(unknown)}: in neither results file; "
            f"{what}s: {', '.join(sorted(held)) or 'none'}"
        )


# --- rendering ------------------------------------------------------------------------------


def _num(value: float) -> str:
    """About four significant digits, never in exponent form: 1234, 130.8, 29.87, 4.789."""
    size = abs(value)
    decimals = 0 if size >= 1000 else 1 if size >= 100 else 2 if size >= 10 else 3
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def value_text(value: float | None, unit: str, *, sign: bool = False) -> str:
    """A value (or, with ``sign``, a change) in its unit: ``812.5 ms``, ``2.5%``,
    ``$0.0000274``, ``41.3 tokens/s``."""
    if value is None:
        return "-"
    if unit == "usd":
        return usd_text(value, sign=sign)
    plus = "+" if sign and value > 0 else ""
    if unit == "ratio":
        return f"{plus}{_num(value * 100)}{' pp' if sign else '%'}"
    suffix = "" if unit == "count" else f" {unit}"
    return f"{plus}{_num(value)}{suffix}"


def relative_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.1f}%"


def interval_text(check: Check) -> str:
    """The interval the verdict read: relative when the threshold is, else absolute."""
    if check.threshold.relative:
        ci = check.relative_interval
        return "-" if ci is None else f"{relative_text(ci[0])} .. {relative_text(ci[1])}"
    ci = check.interval
    if ci is None:
        return "-"
    lo = value_text(ci[0], check.unit, sign=True)
    hi = value_text(ci[1], check.unit, sign=True)
    return f"{lo} .. {hi}"


def threshold_text(check: Check) -> str:
    t = check.threshold
    if t.relative:
        return f"±{_num(t.value * 100)}%"
    if check.unit == "ratio":
        return f"±{_num(t.value * 100)} pp"
    return f"±{value_text(t.value, check.unit)}"


def headline(comparison: Comparison) -> str:
    """One line: what regressed, else what was inconclusive, else that nothing changed."""
    regressed = comparison.regressed
    counts = ", ".join(
        f"{comparison.count(o)} {o}"
        for o in ("regressed", "inconclusive", "improved", "unchanged")
        if comparison.count(o)
    )
    if regressed:
        what = "; ".join(
            f"{c.statistic} {relative_text(c.relative_change)} [{c.stage}/{c.provider}]"
            if c.relative_change is not None
            else f"{c.statistic} {value_text(c.change, c.unit, sign=True)} [{c.stage}/{c.provider}]"
            for c in regressed
        )
        return f"REGRESSED: {what} ({counts})"
    if comparison.count("inconclusive"):
        return f"INCONCLUSIVE: nothing regressed measurably, but not all could be told ({counts})"
    return f"OK: nothing regressed ({counts})"


def _rows(checks: Sequence[Check], *, scope: bool) -> list[list[str]]:
    rows = []
    for c in checks:
        row = [c.stage, c.provider] if scope else []
        row += [
            c.statistic,
            value_text(c.baseline, c.unit),
            value_text(c.current, c.unit),
            value_text(c.change, c.unit, sign=True),
            relative_text(c.relative_change),
            interval_text(c),
            threshold_text(c),
            _MARK[c.outcome],
            c.reason,
        ]
        rows.append(row)
    return rows


def _headers(comparison: Comparison, *, scope: bool) -> list[str]:
    level = f"{comparison.confidence * 100:g}% CI"
    return [
        *(["stage", "provider"] if scope else []),
        "statistic",
        "baseline",
        "current",
        "change",
        "change %",
        level,
        "threshold",
        "verdict",
        "why",
    ]


def _footer(comparison: Comparison) -> list[str]:
    lines = []
    if comparison.only_in_baseline:
        lines.append(f"only in baseline (not compared): {', '.join(comparison.only_in_baseline)}")
    if comparison.only_in_current:
        lines.append(f"only in current (not compared): {', '.join(comparison.only_in_current)}")
    if comparison.not_compared:
        lines.append(f"measured on neither side: {', '.join(comparison.not_compared)}")
    lines += [f"note: {n}" for n in comparison.notes]
    methods = sorted({c.method for c in comparison.checks})
    lines.append(
        f"method: {', '.join(methods)}; bootstrap {comparison.resamples} resamples of "
        f"requests, seed {comparison.seed}; a verdict reads the interval against the "
        "threshold (straddling it is inconclusive)"
    )
    return lines


def render_table(comparison: Comparison) -> str:
    """The console form: a headline, one table of every check, what was not compared."""
    table = tabulate(
        _rows(comparison.checks, scope=True),
        headers=_headers(comparison, scope=True),
        disable_numparse=True,
    )
    lines = [
        f"lens compare: {comparison.baseline} -> {comparison.current}",
        headline(comparison),
        "",
        table,
        "",
        *_footer(comparison),
    ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(comparison: Comparison) -> str:
    """GitHub-flavoured markdown: a headline saying what regressed, then one table per
    stage x provider (fits ``$GITHUB_STEP_SUMMARY`` and a pull-request comment)."""
    icon = {"regressed": "❌", "improved": "✅", "unchanged": "✅", "inconclusive": "⚠️"}
    lines = [
        f"## lens compare: `{_md(comparison.baseline)}` → `{_md(comparison.current)}`",
        "",
        f"**{_md(headline(comparison))}**",
        "",
    ]
    groups: dict[tuple[str, str], list[Check]] = {}
    for c in comparison.checks:
        groups.setdefault((c.stage, c.provider), []).append(c)
    for (stage, provider), checks in groups.items():
        lines.append(f"### {_md(stage)} / {_md(provider)}")
        lines.append("")
        rows = [
            [_md(cell) for cell in [*row[:-2], f"{icon[c.outcome]} {row[-2]}", row[-1]]]
            for c, row in zip(checks, _rows(checks, scope=False), strict=True)
        ]
        lines.append(tabulate(rows, headers=_headers(comparison, scope=False), tablefmt="github"))
        lines.append("")
    lines += [f"- {_md(line)}" for line in _footer(comparison)]
    return "\n".join(lines) + "\n"


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=1) + "\n"


def _case(c: Check) -> Case:
    name = f"{c.statistic} [stage={c.stage} provider={c.provider}]"
    detail = (
        f"baseline {value_text(c.baseline, c.unit)} (n = {c.n_baseline}), current "
        f"{value_text(c.current, c.unit)} (n = {c.n_current}); change "
        f"{value_text(c.change, c.unit, sign=True)} ({relative_text(c.relative_change)}); "
        f"interval {interval_text(c)}; threshold {threshold_text(c)}; method {c.method}"
    )
    message = f"{c.outcome}: {c.reason}"
    outcome = {"regressed": "failure", "inconclusive": "skipped"}.get(c.outcome, "pass")
    return Case(
        name=name,
        classname=f"compare.{c.stage}.{c.provider}",
        outcome=outcome,  # type: ignore[arg-type]
        message=message,
        detail=detail,
        failure_type="Regression",
    )


def comparison_suite(comparison: Comparison) -> Suite:
    """One ``<testcase>`` per check, ``<failure>`` when regressed, ``<skipped>`` when
    inconclusive."""
    return Suite(
        f"lens compare: {comparison.baseline} -> {comparison.current}",
        [_case(c) for c in comparison.checks],
    )


def junit_comparison(comparison: Comparison, *, timestamp: str = "", hostname: str = "") -> str:
    """JUnit XML of ``comparison`` alone (``lens compare --export junit=``)."""
    return junit_suites([comparison_suite(comparison)], timestamp=timestamp, hostname=hostname)


def write_junit(comparison: Comparison, path: Path) -> None:
    write_atomic(path, junit_comparison(comparison))
