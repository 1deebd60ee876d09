"""Model selection: which provider is the cheapest one that meets the SLA?

Each provider is a candidate, pooling every stage it ran (or only the stages of an
optional filter).  A candidate is **eligible** when every verdict in its scope passed,
its cost is known, and at least one of its requests conformed to the SLA; eligible
candidates are ranked by cost per SLA-conforming request (the total spent, failures and
slow answers included, divided by the requests that were worth having), cheapest first;
ties go to the lower p95 TTFT, then to the id.  Every other candidate says why it was left
out.

Independently of eligibility, the Pareto frontier of p95 TTFT against cost per 1M output
tokens shows the trade-off: a candidate is on it when no other is at least as good on
both and better on one.

Pure and synchronous, like the rest of the metrics stage.  Money is ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Context, Decimal
from functools import reduce

from lens.metrics.judge import Outcome, Verdict
from lens.metrics.summary import Summary

_CTX = Context(prec=40)
_NO_PRICE = "no price known"
_NO_CONFORMING = "no SLA-conforming request"


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One reason a candidate is not eligible."""

    reason: str  # the verdict's reason, or why the candidate cannot be ranked
    sla: str | None = None  # the assertion that did not pass, when a verdict is the cause
    stage: str | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider as a choice, over the stages it ran (or those of the filter)."""

    provider: str
    model: str
    stages: tuple[str, ...]  # the stages pooled, in run order
    requests: int
    ok: int
    sla_conforming: int
    total_usd: Decimal | None  # None: some stage that started requests has no known cost
    per_sla_conforming_usd: Decimal | None
    per_1m_output_tokens_usd: Decimal | None
    ttft_p95_ms: float | None  # the worst stage's p95 (see ``worst_stage_p95``)
    passed: int  # verdicts in the candidate's scope, by outcome
    failed: int
    inconclusive: int
    excluded_because: tuple[Exclusion, ...]
    rank: int | None = None  # 1 = recommended; None when excluded
    pareto: bool = False

    @property
    def eligible(self) -> bool:
        return not self.excluded_because


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Eligible candidates in rank order, then the excluded ones in run order."""

    candidates: tuple[Candidate, ...]
    stages: tuple[str, ...] | None  # the stage filter; None: every stage

    @property
    def best(self) -> Candidate | None:
        first = self.candidates[0] if self.candidates else None
        return first if first is not None and first.eligible else None

    @property
    def eligible(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.eligible)

    @property
    def excluded(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if not c.eligible)


def worst_stage_p95(summaries: Sequence[Summary], metric: str = "ttft") -> float | None:
    """The highest per-stage p95 of ``metric``: summaries keep sketch statistics, not the
    values, so a pooled p95 cannot be had from them, and the worst stage is the bound a
    user of that provider would meet."""
    values = [
        v for s in summaries if (stats := s.metrics.get(metric)) and (v := stats.p95) is not None
    ]
    return max(values) if values else None


def _in_scope(v: Verdict, provider: str, stages: Collection[str] | None) -> bool:
    # An SLA whose scope matched nothing has a None provider (or stage): it may have
    # been meant for this candidate, so it counts against it rather than silently not.
    return (v.provider is None or v.provider == provider) and (
        stages is None or v.stage is None or v.stage in stages
    )


def _divide(amount: Decimal, n: int, scale: int = 1) -> Decimal | None:
    if n == 0:
        return None
    return _CTX.divide(_CTX.multiply(amount, Decimal(scale)), Decimal(n))


def _candidate(
    provider: str, model: str, summaries: Sequence[Summary], verdicts: Sequence[Verdict]
) -> Candidate:
    priced = [s.cost for s in summaries if s.cost is not None]
    # A stage that started nothing has nothing to price; any other without a cost would
    # make a partial sum look cheap.
    unpriced = [s for s in summaries if s.cost is None and s.requests > 0]
    total = reduce(_CTX.add, (c.total for c in priced), Decimal(0))
    known = bool(priced) and not unpriced
    tokens = sum(c.output_tokens for c in priced)
    conforming = sum(s.sla_conforming for s in summaries)
    reasons = [
        Exclusion(reason=v.reason, sla=v.sla, stage=v.stage, outcome=v.outcome)
        for v in verdicts
        if v.outcome != "pass"
    ]
    if not known:
        reasons.append(Exclusion(_NO_PRICE))
    if conforming == 0:
        reasons.append(Exclusion(_NO_CONFORMING))
    return Candidate(
        provider=provider,
        model=model,
        stages=tuple(s.stage for s in summaries),
        requests=sum(s.requests for s in summaries),
        ok=sum(s.ok for s in summaries),
        sla_conforming=conforming,
        total_usd=total if known else None,
        per_sla_conforming_usd=_divide(total, conforming) if known else None,
        per_1m_output_tokens_usd=_divide(total, tokens, 1_000_000) if known else None,
        ttft_p95_ms=worst_stage_p95(summaries),
        passed=sum(v.outcome == "pass" for v in verdicts),
        failed=sum(v.outcome == "fail" for v in verdicts),
        inconclusive=sum(v.outcome == "inconclusive" for v in verdicts),
        excluded_because=tuple(reasons),
    )


_Point = tuple[float, Decimal]  # (p95 TTFT ms, USD per 1M output tokens)


def _dominates(a: _Point, b: _Point) -> bool:
    """``a`` is at least as fast and as cheap as ``b``, and strictly better on one."""
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def pareto_frontier(candidates: Sequence[Candidate]) -> frozenset[str]:
    """Ids of the candidates no other dominates on (p95 TTFT, cost per 1M output tokens),
    among those with both known; equal points dominate neither each other."""
    points: dict[str, _Point] = {
        c.provider: (c.ttft_p95_ms, c.per_1m_output_tokens_usd)
        for c in candidates
        if c.ttft_p95_ms is not None and c.per_1m_output_tokens_usd is not None
    }
    return frozenset(
        pid
        for pid, point in points.items()
        if not any(_dominates(other, point) for other in points.values())
    )


def _rank_key(c: Candidate) -> tuple[Decimal, bool, float, str]:
    assert c.per_sla_conforming_usd is not None  # eligible candidates are costed
    ttft = c.ttft_p95_ms
    return (c.per_sla_conforming_usd, ttft is None, ttft or 0.0, c.provider)


def recommend(
    summaries: Sequence[Summary],
    verdicts: Sequence[Verdict],
    models: Mapping[str, str],
    stages: Collection[str] | None = None,
) -> Recommendation:
    """Rank the providers of ``summaries`` (restricted to ``stages`` when given).

    ``models`` maps provider ids to model names (for display); ``verdicts`` are the SLA
    verdicts of the same run.  A stage filter that names a stage absent from
    ``summaries`` is the caller's to reject: here it simply selects nothing.
    """
    # A repeated stage counts once, pooled: its repetitions' summaries hold the same requests.
    chosen = [
        s for s in summaries if s.repetition is None and (stages is None or s.stage in stages)
    ]
    providers = list(dict.fromkeys(s.provider for s in chosen))
    built = [
        _candidate(
            p,
            models.get(p, ""),
            [s for s in chosen if s.provider == p],
            [v for v in verdicts if _in_scope(v, p, stages)],
        )
        for p in providers
    ]
    frontier = pareto_frontier(built)
    ranked = sorted((c for c in built if c.eligible), key=_rank_key)
    ordered = [
        *(replace(c, rank=i, pareto=c.provider in frontier) for i, c in enumerate(ranked, start=1)),
        *(replace(c, pareto=c.provider in frontier) for c in built if not c.eligible),
    ]
    return Recommendation(
        candidates=tuple(ordered),
        stages=None if stages is None else tuple(sorted(stages)),
    )
