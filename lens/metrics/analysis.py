"""What a run says beyond its summaries and verdicts, in one frozen value: ``analyse_run``.

The results document (``lens.export.results``) is built from a run's outcome, its
summaries and verdicts, and this analysis: the GPU-hour bill, how closely each open-loop
schedule was kept, which requests went to a cold provider, the integrity checks and the
warnings they raise, the idle probes, each record's price, the recommendation, and the
run's exit code.  Pure and synchronous like the rest of ``lens.metrics``; ``lens.pipeline``
calls it once the run is summarised and judged, and export only formats what it found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lens.metrics.cost import RecordPrice, RunBill, bill_run, record_price
from lens.metrics.idle import IdleProbes, idle_probes
from lens.metrics.integrity import IntegrityReport, cold_flags, integrity_report
from lens.metrics.judge import Verdict, run_exit_code
from lens.metrics.pacing import Pacing, pacing
from lens.metrics.recommend import Recommendation, recommend
from lens.metrics.summary import Summary
from lens.plan.model import IdleProbe, Plan
from lens.records import RunOutcome


@dataclass(frozen=True, slots=True)
class RunAnalysis:
    exit_code: int  # 0 pass, 1 SLA failed, 3 only inconclusive (or partial), 5 lens failed
    bill: RunBill  # the GPU-hour bill (its units: one per window, in run order)
    pacing: Mapping[tuple[str, str], Pacing]  # (stage, provider) of each open-loop unit
    # One entry per record of the outcome, in its order: sent to a cold provider; its price.
    cold: tuple[bool, ...]
    prices: tuple[RecordPrice | None, ...]
    integrity: IntegrityReport
    idle_probes: tuple[IdleProbes, ...]
    recommendation: Recommendation

    def pacing_of(self, stage: str, provider: str) -> Pacing | None:
        return self.pacing.get((stage, provider))


def analyse_run(
    plan: Plan,
    outcome: RunOutcome,
    summaries: Sequence[Summary],
    verdicts: Sequence[Verdict],
    bill: RunBill | None = None,
) -> RunAnalysis:
    """Everything the results need of ``outcome`` besides its summaries and verdicts.
    ``bill``: the run's GPU-hour bill, the one the summaries were built with (worked out
    here when not given)."""
    if bill is None:
        bill = bill_run(plan.providers, outcome.windows, outcome.records)
    records = outcome.records
    cold = tuple(cold_flags(records, cold_after_s=plan.integrity.cold_after_s))
    probe_stages = {u.stage for u in plan.stages if isinstance(u.load, IdleProbe)}
    return RunAnalysis(
        exit_code=run_exit_code(
            verdicts, partial=outcome.partial, failed=outcome.failure is not None
        ),
        bill=bill,
        pacing=pacing(records),
        cold=cold,
        prices=tuple(
            record_price(r, plan.providers[r.provider], share)
            for r, share in zip(records, bill.record_usd, strict=True)
        ),
        integrity=integrity_report(
            records, cold, outcome.harness, buffered_share=plan.integrity.buffered_share
        ),
        idle_probes=idle_probes(records, cold, probe_stages),
        recommendation=recommend(
            summaries, verdicts, {p: spec.model for p, spec in plan.providers.items()}
        ),
    )
