"""``lens merge``: the results of N shards of one plan (``lens run --shard I/N``) as one run.

Refused (``ResultsError``, exit 2) unless every file is a shard's results, all of one plan
(equal ``plan_hash``) and one count, each index exactly once.  Then:

- records are concatenated, in shard order, each keeping its ``shard``;
- stage windows are merged per unit, from the earliest start to the latest end across the
  shards that had a share of it (a shard with none ran it for no time and is left out); the
  measured phase likewise from the earliest measured start to the earliest cooldown.  Each
  shard's times are on its own monotonic clock, started at the shared ``--start-at``: they
  compare as well as the hosts' wall clocks agreed (NTP), and not at all without it;
- summaries are rebuilt from the merged records with the run's rules (lens.metrics.summary:
  exact percentiles up to its exact limit, the same sketches beyond), over the merged
  windows; each record keeps the cost its shard priced it at, and a stage's token cost is
  the exact (Decimal) sum of its shards' costs;
- SLAs are the plan's (the ``plan`` section every shard carries), judged once on the merged
  summaries and records; when any shard's client was overloaded the verdicts are
  distrusted (inconclusive), as in a run;
- the exit code follows ``lens run``'s rules: partial if any shard was, lens failed if any
  shard's lens failed.

- GPU-hour costs are billed again, on the merged run: N shards hitting one deployment pay
  for its wall time once, not N times (a sum of the shards' own bills would).  Each unit's
  billed span is its merged window (the union of the shards' windows, on the relative
  clock they share since --start-at: exact for worker processes, within the hosts' NTP
  error for shards) with the set-up and pause before it, billed and shared among all the
  merged records of the unit by busy time exactly as one process's run is
  (``lens.metrics.cost.bill_run``); where two units' merged windows overlap (one shard
  ahead of another), the overlap is billed once, to the earlier unit.  The shards' own
  shares are dropped.

Not carried over: idle probes and adaptive sweeps (refused when sharding), comparisons
with a baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Context, Decimal
from typing import Any

from lens import exitcodes
from lens.errors import Problem, ResultsError
from lens.export.results import (
    Environment,
    HarnessOut,
    IntegrityOut,
    RecordOut,
    RepetitionsOut,
    Results,
    ShardOut,
    StageWindowOut,
    billing_out,
    integrity_out,
    recommendation_out,
    summary_out,
)
from lens.metrics.cost import RunBill, StageCost, bill_run, record_price
from lens.metrics.integrity import integrity_report
from lens.metrics.judge import Verdict, distrust, run_exit_code
from lens.metrics.pacing import pacing
from lens.metrics.recommend import recommend
from lens.metrics.repetitions import repetition_spreads
from lens.metrics.summary import Summary, SummaryBuilder, Window, pooled_window
from lens.metrics.windows import judge_all
from lens.plan.model import Plan, ProviderSpec, SlaSpec
from lens.pricing import GpuHourRate
from lens.pricing.gpu import money_text
from lens.records import (
    EngineTimings,
    ErrorClass,
    HarnessLimits,
    HarnessReport,
    Phase,
    Repetition,
    RequestRecord,
    TokenSource,
)
from lens.scenario.sla import parse_sla

NS_PER_MS = 1_000_000
_MONEY = Context(prec=40)  # as lens.metrics.cost adds money: exact for any real amount


def check_shards(shards: Sequence[Results], labels: Sequence[str]) -> list[ShardOut]:
    """Every file a shard of one plan, each index once: their ``ShardOut``s, or
    ``ResultsError`` saying which file is wrong and how."""
    if not shards:
        raise ResultsError("nothing to merge: give the shards' results files")
    problems: list[str] = []
    infos: list[ShardOut] = []
    for label, results in zip(labels, shards, strict=True):
        if results.shard is None:
            problems.append(f"{label}: not a shard's results (run with lens run --shard I/N)")
        elif results.records_omitted:
            # Merged summaries are rebuilt from every shard's records.
            problems.append(
                f"{label}: lists {len(results.records)} of its "
                f"{len(results.records) + results.records_omitted} records (results: "
                "{records: ...}): a merge needs every record; run shards with records: all"
            )
        else:
            infos.append(results.shard)
    if problems:
        raise ResultsError([Problem(p) for p in problems])
    first, first_label = infos[0], labels[0]
    for label, info in zip(labels, infos, strict=True):
        if info.plan_hash != first.plan_hash:
            problems.append(
                f"{label}: shard of another plan ({info.plan_hash}, not {first_label}'s "
                f"{first.plan_hash}): every shard must run the same scenario and inputs"
            )
        elif info.count != first.count:
            problems.append(f"{label}: shard {info.index}/{info.count}, not of {first.count}")
    if problems:
        raise ResultsError([Problem(p) for p in problems])
    seen: dict[int, str] = {}
    for label, info in zip(labels, infos, strict=True):
        if info.index in seen:
            problems.append(f"shard {info.index} given twice: {seen[info.index]} and {label}")
        else:
            seen[info.index] = label
    missing = sorted(set(range(first.count)) - set(seen))
    if missing:
        problems.append(
            f"missing shard{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} of {first.count}"
        )
    if problems:
        raise ResultsError([Problem(p) for p in problems])
    return infos


def record_from_out(rec: RecordOut) -> RequestRecord:
    """A stored record as the metrics stage's value again (times back in ns; chunk
    arrivals were stored at microsecond resolution)."""

    def ns(ms: float | None) -> int | None:
        return None if ms is None else round(ms * NS_PER_MS)

    t_dispatch = round(rec.t_dispatch * NS_PER_MS)
    return RequestRecord(
        provider=rec.provider,
        stage=rec.stage,
        prompt=rec.prompt,
        index=rec.index,
        ok=rec.status == "ok",
        error_class=None if rec.error_class is None else ErrorClass(rec.error_class),
        error_message=rec.error_message,
        http_status=rec.http_status,
        t_intended=ns(rec.t_intended),
        t_dispatch=t_dispatch,
        t_headers=ns(rec.t_headers),
        t_first_chunk=ns(rec.t_first_chunk),
        t_first_token=ns(rec.t_first_token),
        t_first_visible=ns(rec.t_first_visible),
        t_last_token=ns(rec.t_last_token),
        t_end=round(rec.t_end * NS_PER_MS),
        chunk_times=tuple(t_dispatch + round(ms * NS_PER_MS) for ms in rec.chunk_offsets),
        chunk_tokens=rec.chunk_tokens,
        input_tokens=rec.input_tokens,
        output_tokens=rec.output_tokens,
        cached_input_tokens=rec.cached_input_tokens,
        cache_write_tokens=rec.cache_write_tokens,
        reasoning_tokens=rec.reasoning_tokens,
        token_source=None if rec.token_source is None else TokenSource(rec.token_source),
        reads=rec.reads,
        attempt=rec.attempt,
        phase=rec.phase,
        request_id=rec.request_id,
        stale_connection=rec.stale_connection,
        stale_lost_ns=ns(rec.stale_lost_ms),
        extra=dict(rec.provider_facts),
        session=rec.session,
        turn=rec.turn,
        inputs=rec.inputs,
        prefix_group=rec.prefix_group,
        engine=None if rec.engine is None else EngineTimings(**rec.engine.model_dump()),
    )


def _stored_cost(rec: RecordOut) -> Decimal | None:
    """A record's own (per-request) cost; a GPU-hour share is not one."""
    detail = rec.cost_detail
    if rec.cost_usd is None or (detail is not None and detail.get("pricing") == "gpu-hour"):
        return None
    return Decimal(rec.cost_usd)


def _merge_windows(parts: Sequence[StageWindowOut]) -> StageWindowOut:
    """One unit's windows across shards: earliest start to latest end of those that sent
    anything (all of them when none did)."""
    ran = [w for w in parts if w.started > 0] or list(parts)

    def edge(values: Iterable[float | None], pick: Callable[[Iterable[float]], float]) -> Any:
        known = [v for v in values if v is not None]
        return pick(known) if known else None

    measure_start = None
    if any(w.measure_start_ms is not None for w in ran):
        measure_start = min(
            w.start_ms if w.measure_start_ms is None else w.measure_start_ms for w in ran
        )
    measure_end = None
    if any(w.measure_end_ms is not None for w in ran):
        measure_end = min(w.end_ms if w.measure_end_ms is None else w.measure_end_ms for w in ran)
    planned = [w.planned for w in parts]
    return StageWindowOut(
        stage=parts[0].stage,
        provider=parts[0].provider,
        start_ms=min(w.start_ms for w in ran),
        end_ms=max(w.end_ms for w in ran),
        planned=None if None in planned else sum(p or 0 for p in planned),
        started=sum(w.started for w in parts),
        sweep=parts[0].sweep,
        repetition=parts[0].repetition,
        measure_start_ms=measure_start,
        measure_end_ms=measure_end,
        pause_s=edge((w.pause_s for w in parts), max),
        late_ms=edge((w.late_ms for w in parts), max),
        # Billed again on the merged windows (``bill_merged``), never summed across shards.
        billed_s=None,
        setup_s=None,
        cost_usd=None,
        unattributed_usd=None,
    )


@dataclass(frozen=True, slots=True)
class _BilledWindow:
    """A merged window as ``bill_run`` reads it (run clock, ns)."""

    stage: str
    provider: str
    t_start: int
    t_end: int
    pause_ns: int


def _gpu_priced(plan: Mapping[str, Any]) -> dict[str, ProviderSpec]:
    """The plan section's providers priced by the GPU-hour, with their rates."""
    out: dict[str, ProviderSpec] = {}
    for p in plan.get("providers", ()):
        price = p.get("price") or {}
        if price.get("kind") != "gpu-hour":
            continue
        rate = GpuHourRate(
            Decimal(str(price["usd_per_gpu_hour"])), int(price["gpus"]), str(price["source"])
        )
        out[p["id"]] = ProviderSpec(
            id=p["id"], type=p.get("type", ""), model=p.get("model", ""), base_url=None, price=rate
        )
    return out


def bill_merged(
    priced: Mapping[str, ProviderSpec],
    windows: Sequence[StageWindowOut],
    records: Sequence[RequestRecord],
) -> RunBill:
    """The merged run's GPU-hour bill: its merged windows billed as one run's.  Merged
    windows may overlap (a shard that finished a unit early started the next one while
    another shard still ran it): the overlap is billed once, to the earlier unit, which
    was still running; the later unit is billed from there."""
    billed: list[_BilledWindow] = []
    prev_end = 0
    for w in windows:
        start = max(round(w.start_ms * NS_PER_MS), prev_end)
        end = max(round(w.end_ms * NS_PER_MS), start)
        billed.append(
            _BilledWindow(w.stage, w.provider, start, end, round((w.pause_s or 0.0) * 1e9))
        )
        prev_end = end
    return bill_run(priced, billed, records)


def _billed_window(w: StageWindowOut, bill: RunBill, k: int) -> StageWindowOut:
    unit = bill.units[k]
    if unit.usd is None:
        return w
    return w.model_copy(
        update={
            "billed_s": unit.billed_ns / 1e9,
            "pause_s": unit.pause_ns / 1e9,
            "setup_s": unit.setup_ns / 1e9,
            "cost_usd": money_text(unit.usd),
            "unattributed_usd": None
            if unit.unattributed_usd is None
            else money_text(unit.unattributed_usd),
        }
    )


def _span(w: StageWindowOut, phase: Phase) -> Window:
    start, end = round(w.start_ms * NS_PER_MS), round(w.end_ms * NS_PER_MS)
    m_start = start if w.measure_start_ms is None else round(w.measure_start_ms * NS_PER_MS)
    m_end = end if w.measure_end_ms is None else round(w.measure_end_ms * NS_PER_MS)
    if phase == "warmup":
        return (start, m_start)
    if phase == "cooldown":
        return (m_end, end)
    return (m_start, m_end)


def _slas(plan: Mapping[str, Any], windows: Sequence[StageWindowOut]) -> tuple[SlaSpec, ...]:
    """The plan section's SLAs; a scope naming a sweep or a repeated stage takes in the
    units it expanded into, as when the run judged them."""
    specs = []
    for entry in plan.get("sla", ()):
        stage = entry.get("stage")
        steps = tuple(
            w.stage
            for w in windows
            if stage is not None
            and (
                (w.sweep is not None and w.sweep.sweep == stage)
                or (w.repetition is not None and w.repetition.stage == stage)
            )
        )
        specs.append(
            SlaSpec(
                parse_sla(entry["assert"]),
                provider=entry.get("provider"),
                stage=stage,
                where=entry.get("where", ""),
                steps=tuple(dict.fromkeys(steps)),
                window_s=entry.get("window_s"),
                allow=entry.get("allow", 0),
                stop_on_fail=bool(entry.get("stop_on_fail", False)),
            )
        )
    return tuple(specs)


def _harness(shards: Sequence[Results]) -> HarnessReport | None:
    """The worst of the shards' self-checks: the merged run is distrusted when any shard's
    client was overloaded (each limit is judged on the worst shard's figure)."""
    outs = [
        (r.shard.index if r.shard else k, r.integrity.harness)
        for k, r in enumerate(shards)
        if r.integrity is not None and r.integrity.harness is not None
    ]
    if not outs:
        return None

    def worst(values: Iterable[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    first = outs[0][1]
    return HarnessReport(
        samples=sum(h.samples for _, h in outs),
        loop_lag_p50_ms=worst(h.loop_lag_p50_ms for _, h in outs),
        loop_lag_p99_ms=worst(h.loop_lag_p99_ms for _, h in outs),
        loop_lag_max_ms=worst(h.loop_lag_max_ms for _, h in outs),
        cpu=worst(h.cpu for _, h in outs),
        limits=HarnessLimits(first.max_loop_lag_ms, first.max_cpu),
    )


def _overloaded_shards(shards: Sequence[Results]) -> list[str]:
    out: list[str] = []
    for k, r in enumerate(shards):
        harness: HarnessOut | None = r.integrity.harness if r.integrity else None
        if harness is not None and harness.status == "overloaded":
            index = r.shard.index if r.shard else k
            out.extend(f"shard {index}: {reason}" for reason in harness.reasons)
    return out


def _with_cost(shards: Sequence[Results], s: Summary, gpu: Mapping[str, ProviderSpec]) -> Summary:
    """GPU-hour: the cost the builder added up from the merged shares; else the shards'."""
    return s if s.provider in gpu else replace(s, cost=_summed_cost(shards, s))


def _summed_cost(shards: Sequence[Results], s: Summary) -> StageCost | None:
    """The stage's token cost: its shards' costs added up exactly."""
    total: StageCost | None = None
    pool = "summaries" if s.phase == "measure" else "phase_summaries"
    for results in shards:
        for out in getattr(results, pool):
            if (out.stage, out.provider, out.phase) != (s.stage, s.provider, s.phase):
                continue
            if out.cost is None or out.cost.get("pricing") != "tokens":
                continue
            part = StageCost(
                "tokens",
                Decimal(str(out.cost["total_usd"])),
                int(out.cost.get("priced_requests") or 0),
                int(out.cost.get("unpriced_requests") or 0),
                int(out.cost.get("priced_ok_requests") or 0),
                int(out.cost.get("priced_output_tokens") or 0),
                0,
            )
            if total is None:
                total = part
            else:
                total = StageCost(
                    "tokens",
                    _MONEY.add(total.total, part.total),
                    total.priced_requests + part.priced_requests,
                    total.unpriced_requests + part.unpriced_requests,
                    total.ok_requests + part.ok_requests,
                    total.output_tokens + part.output_tokens,
                    0,
                )
    return None if total is None else replace(total, sla_conforming=s.sla_conforming)


def merge_results(shards: Sequence[Results], labels: Sequence[str] | None = None) -> Results:
    """The shards' results as one run's (see the module's rules); ``labels`` name the
    shards in errors (their paths; default ``shard #k``)."""
    labels = list(labels) if labels is not None else [f"#{k}" for k in range(len(shards))]
    infos = check_shards(shards, labels)
    order = sorted(range(len(shards)), key=lambda k: infos[k].index)
    shards = [shards[k] for k in order]
    infos = [infos[k] for k in order]
    plan_doc = shards[0].plan

    # Units in the order the plan ran them (every shard ran every unit, in that order).
    keys: list[tuple[str, str]] = []
    parts: dict[tuple[str, str], list[StageWindowOut]] = {}
    for results in shards:
        for w in results.stages:
            key = (w.stage, w.provider)
            if key not in parts:
                keys.append(key)
                parts[key] = []
            parts[key].append(w)
    windows = tuple(_merge_windows(parts[key]) for key in keys)

    record_outs = tuple(r for results in shards for r in results.records)
    records = tuple(record_from_out(r) for r in record_outs)
    costs = {id(rec): _stored_cost(out) for rec, out in zip(records, record_outs, strict=True)}
    gpu = _gpu_priced(plan_doc)
    bill = bill_merged(gpu, windows, records) if gpu else None
    if bill is not None:
        # The merged run's shares replace the shards' (each billed its own wall time).
        windows = tuple(_billed_window(w, bill, k) for k, w in enumerate(windows))
        outs = list(record_outs)
        for j, (rec, share) in enumerate(zip(records, bill.record_usd, strict=True)):
            spec = gpu.get(rec.provider)
            if spec is None:
                continue
            costs[id(rec)] = share
            priced = record_price(rec, spec, share)
            outs[j] = outs[j].model_copy(
                update={
                    "cost_usd": None if priced is None else priced[0],
                    "cost_detail": None if priced is None else priced[1],
                }
            )
        record_outs = tuple(outs)

    pooled = frozenset(
        s["stage"]
        for s in plan_doc.get("stages", ())
        if s.get("phases", {}).get("sla_includes_warmup")
    )
    repetitions = {
        w.stage: Repetition(w.repetition.stage, w.repetition.index, w.repetition.count)
        for w in windows
        if w.repetition is not None
    }
    slas = _slas(plan_doc, windows)
    builder = SummaryBuilder(
        # GPU-hour providers' summaries add up their records' merged shares; token costs
        # are their shards' sums (``_summed_cost``).
        providers=gpu,
        slas=slas,
        pooled_stages=pooled,
        repetitions=repetitions,
        stored_cost=lambda rec: costs[id(rec)],
    )
    builder.add_many(records)
    spans = {
        (w.stage, w.provider): _span(w, "measure")
        if w.stage not in pooled
        else _span(w, "warmup")[:1] + _span(w, "cooldown")[1:]
        for w in windows
    }
    set_apart: tuple[Phase, ...] = ("warmup", "cooldown")
    phase_spans = {(w.stage, w.provider, p): _span(w, p) for w in windows for p in set_apart}
    rep_spans: dict[tuple[str, str], list[Window]] = {}
    rep_phase: dict[tuple[str, str, Phase], list[Window]] = {}
    for w in windows:
        if w.repetition is None:
            continue
        rep_spans.setdefault((w.repetition.stage, w.provider), []).append(
            spans[(w.stage, w.provider)]
        )
        for p in set_apart:
            rep_phase.setdefault((w.repetition.stage, w.provider, p), []).append(
                phase_spans[(w.stage, w.provider, p)]
            )
    summary_windows = dict(spans) | {k: pooled_window(v) for k, v in rep_spans.items()}
    phase_windows = dict(phase_spans) | {k: pooled_window(v) for k, v in rep_phase.items()}
    summaries = [_with_cost(shards, s, gpu) for s in builder.build(summary_windows)]
    phase_summaries = [_with_cost(shards, s, gpu) for s in builder.build_phases(phase_windows)]

    verdicts: tuple[Verdict, ...] = judge_all(
        slas, summaries, records, spans, providers={}, pooled=pooled
    )
    overloaded = _overloaded_shards(shards)
    harness = _harness(shards)
    reasons = harness.reasons if harness is not None else ()
    verdicts = distrust(verdicts, overloaded or reasons)

    partial = any(r.partial for r in shards)
    interrupted = next(
        (
            f"shard {i.index}: {r.interrupted_by}"
            for r, i in zip(shards, infos, strict=True)
            if r.interrupted_by
        ),
        None,
    )
    failure = next(
        (f"shard {i.index}: {r.failure}" for r, i in zip(shards, infos, strict=True) if r.failure),
        None,
    )
    exit_code = run_exit_code(verdicts, partial=partial, failed=failure is not None)

    providers = {
        p["id"]: ProviderSpec(
            id=p["id"], type=p.get("type", ""), model=p.get("model", ""), base_url=None
        )
        for p in plan_doc.get("providers", ())
    }
    models = {pid: spec.model for pid, spec in providers.items()}
    stub = Plan(
        name=shards[0].scenario,
        description="",
        source="",
        providers=providers,
        prompts={},
        stages=(),
        slas=slas,
    )
    paced = pacing(records)
    planned: dict[tuple[str, str], int | None] = {}
    for w in windows:
        planned[(w.stage, w.provider)] = w.planned
        if w.repetition is not None:
            key = (w.repetition.stage, w.provider)
            before = planned.get(key, 0)
            planned[key] = None if before is None or w.planned is None else before + w.planned
    colds = [bool(r.cold) for r in record_outs]
    buffered = float(plan_doc.get("integrity", {}).get("buffered_share", 0.5))
    integrity = integrity_out(integrity_report(records, colds, harness, buffered_share=buffered))
    if overloaded and integrity.harness is not None:
        integrity = IntegrityOut.model_validate(
            integrity.model_dump()
            | {
                "harness": integrity.harness.model_dump()
                | {"status": "overloaded", "reasons": tuple(overloaded)}
            }
        )
    # Each shard scraped the engines it ran against (worker runs: worker 0 only): kept as
    # scraped, each naming its shard, with the shards' warnings about them.
    scraped = tuple(
        m if m.scraped_by is not None else m.model_copy(update={"scraped_by": label})
        for results, label in zip(shards, [f"shard {i.index}" for i in infos], strict=True)
        for m in results.server_metrics
    )
    scrape_warnings = tuple(
        w
        for results in shards
        if results.integrity is not None
        for w in results.integrity.warnings
        if w.startswith("server metrics of ")
    )
    if scrape_warnings:
        integrity = integrity.model_copy(
            update={"warnings": (*integrity.warnings, *dict.fromkeys(scrape_warnings))}
        )
    env = shards[0].environment
    environment = Environment.model_validate(
        env.model_dump()
        | {
            "started_at": min(r.environment.started_at for r in shards),
            "finished_at": max(r.environment.finished_at for r in shards),
        }
    )
    return Results(
        scenario=shards[0].scenario,
        partial=partial,
        interrupted_by=interrupted,
        exit_code=exitcodes.LENS_FAILED if failure is not None else exit_code,
        failure=failure,
        environment=environment,
        plan=plan_doc,
        stages=windows,
        billing=None if bill is None else billing_out(bill),
        summaries=tuple(
            summary_out(
                s, stub, planned.get((s.stage, s.provider)), paced.get((s.stage, s.provider))
            )
            for s in summaries
        ),
        phase_summaries=tuple(summary_out(s, stub, None) for s in phase_summaries),
        verdicts=verdicts,
        integrity=integrity,
        recommendation=recommendation_out(recommend(summaries, verdicts, models)),
        repetitions=_repetitions_out(summaries),
        shards=tuple(infos),
        server_metrics=scraped,
        records=record_outs,
    )


def _repetitions_out(summaries: Sequence[Summary]) -> tuple[RepetitionsOut, ...]:
    return tuple(
        RepetitionsOut(
            stage=r.stage, provider=r.provider, count=r.count, stages=r.stages, spread=r.spread
        )
        for r in repetition_spreads(summaries)
    )
