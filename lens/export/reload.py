"""A results file read back into the metrics stage's values, so that its summaries can be
judged again against other SLAs (``lens recommend --sla``).

Every statistic a ``Summary`` holds is stored in ``SummaryOut`` (its ``MetricStats`` as
they are, and verdicts are the judge's own ``Verdict``s); the one thing a results
file lacks is the busy time behind GPU-hour shares, which only matters while building
results, so it comes back as 0.  Per-request conformance is recounted from the stored
records with the same rules as during the run (``lens.metrics.conformance``); chunk
offsets are stored at microsecond resolution, so an ITL gap can differ from the live one
by at most 1 us.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation

from lens.errors import InputError
from lens.export.results import RecordOut, Results, SummaryOut
from lens.metric_catalog import SCALAR_METRICS
from lens.metrics.conformance import request_checks, request_conforms
from lens.metrics.cost import StageCost
from lens.metrics.judge import Verdict, judge
from lens.metrics.request import icl_gaps, itl_gaps
from lens.metrics.summary import Summary
from lens.plan.model import SlaSpec
from lens.records import Repetition
from lens.scenario.sla import SlaExpr

_CostDict = Mapping[str, str | int | None]


def _count(cost: _CostDict, key: str, default: int | None = None) -> int:
    value = cost.get(key, default)
    if value is None:
        raise KeyError(key)
    return int(value)


def stage_cost_from_out(s: SummaryOut) -> StageCost | None:
    """The summary's ``StageCost`` again; ``InputError`` when its cost entry is malformed."""
    if s.cost is None:
        return None
    c = s.cost
    where = f"summary {s.stage}/{s.provider}: malformed cost entry"
    kind = c.get("pricing")
    if kind not in ("tokens", "gpu-hour"):
        raise InputError(f"{where} (pricing {kind!r}, expected 'tokens' or 'gpu-hour')")
    try:
        return StageCost(
            kind="tokens" if kind == "tokens" else "gpu-hour",
            total=Decimal(str(c["total_usd"])),
            priced_requests=_count(c, "priced_requests"),
            unpriced_requests=_count(c, "unpriced_requests"),
            # Results written before these were stored: exact whenever every request was
            # priced, which is the usual case.
            ok_requests=_count(c, "priced_ok_requests", s.ok),
            output_tokens=_count(c, "priced_output_tokens", s.output_tokens),
            sla_conforming=_count(c, "sla_conforming_requests"),
        )
    except (KeyError, ValueError, InvalidOperation) as exc:
        raise InputError(f"{where} ({type(exc).__name__}: {exc})") from exc


def summary_from_out(s: SummaryOut) -> Summary:
    return Summary(
        stage=s.stage,
        provider=s.provider,
        requests=s.requests,
        ok=s.ok,
        errors=s.errors,
        error_counts=s.error_counts,
        error_rate=s.error_rate,
        success_rate=s.success_rate,
        rps=s.rps,
        throughput=s.throughput,
        duration_s=s.duration_s,
        output_tokens=s.output_tokens,
        token_sources=s.token_sources,
        metrics=s.metrics,  # the metrics stage's own MetricStats, as stored
        cost=stage_cost_from_out(s),
        sla_conforming=s.sla_conforming,
        phase=s.phase,
        drained=s.drained,
        repetition=None
        if s.repetition is None
        else Repetition(s.repetition.stage, s.repetition.index, s.repetition.count),
        repeated=s.repeated or 0,
        turns=s.turns,
        abandoned_turns=s.abandoned_turns,
        inputs=s.inputs or 0,
        inputs_per_s=s.inputs_per_s,
        ended_early=s.ended_early or 0,
    )


def record_conforms(rec: RecordOut, checks: Sequence[SlaExpr]) -> bool:
    """Whether one stored request met every per-request check (see ``request_conforms``)."""
    values: dict[str, float | None] = {}
    for name in SCALAR_METRICS:
        value: float | int | None = getattr(rec, name)
        values[name] = None if value is None else float(value)
    per_request_price = rec.cost_detail is None or rec.cost_detail.get("pricing") != "gpu-hour"
    # During the run a GPU-hour request has no cost of its own yet (it is a share of the
    # stage's, known at the end), so cost checks leave it alone; so do they here.
    values["cost"] = float(rec.cost_usd) if rec.cost_usd is not None and per_request_price else None
    series = {
        "itl": itl_gaps(rec.chunk_offsets, rec.chunk_tokens),
        "icl": icl_gaps(rec.chunk_offsets),
    }
    return request_conforms(rec.status == "ok", values, series, checks)


def rejudge(results: Results, slas: Sequence[SlaSpec]) -> tuple[list[Summary], tuple[Verdict, ...]]:
    """The results' summaries judged against ``slas`` instead of the scenario's, with their
    SLA-conforming requests recounted from the stored records.

    Only the records a summary was built from count towards it: its measured requests, and
    its warmup and cooldown ones only where the stage pooled them (``sla_includes_warmup``,
    which left no phase summary of its own).  So a count never exceeds the summary's
    successes; a file whose records say otherwise is inconsistent and refused."""
    summaries = [summary_from_out(s) for s in results.summaries]
    if not results.records and any(s.requests for s in summaries):
        raise InputError("the results file holds no per-request records: cannot re-judge")
    set_apart = {(s.stage, s.provider, s.phase) for s in results.phase_summaries}
    # A repetition's records count towards its own summary and the pooled one.
    pooled_as = {s.stage: s.repetition.stage for s in summaries if s.repetition is not None}
    checks: dict[tuple[str, str], tuple[SlaExpr, ...]] = {}
    conforming: dict[tuple[str, str], int] = {}
    for rec in results.records:
        if rec.phase != "measure" and (rec.stage, rec.provider, rec.phase) in set_apart:
            continue  # summarised (and judged) apart: not one of the summary's requests
        keys = [(rec.stage, rec.provider)]
        if rec.stage in pooled_as:  # held to the pooled summary's checks there
            keys.append((pooled_as[rec.stage], rec.provider))
        for key in keys:
            if key not in checks:
                checks[key] = request_checks(slas, *key)
            if record_conforms(rec, checks[key]):
                conforming[key] = conforming.get(key, 0) + 1
    recounted = []
    for s in summaries:
        n = conforming.get((s.stage, s.provider), 0)
        if n > s.ok:
            raise InputError(
                f"summary {s.stage}/{s.provider}: {n} of its stored records conform, but it "
                f"has only {s.ok} successful requests: the records do not match the summary"
            )
        cost = None if s.cost is None else replace(s.cost, sla_conforming=n)
        recounted.append(replace(s, sla_conforming=n, cost=cost))
    return recounted, judge(slas, recounted)
