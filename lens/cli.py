"""The ``lens`` command: argv in, exit code out.

The run command reads as the pipeline it is: load → compile → start simulators → execute →
aggregate → judge → export.  Exit codes: 0 every SLA passed, 1 an SLA failed, 2 invalid
input, 3 only inconclusive verdicts, 4 an export failed (and no SLA did: 1 wins), 130
interrupted before anything ran.  ``lens recommend`` exits 0 when some provider is
eligible, 1 when none is, 2 on invalid input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from tabulate import tabulate

from lens._version import __version__
from lens.errors import InputError, LensError, Problem
from lens.export.registry import export_all
from lens.export.reload import rejudge, summary_from_out, verdict_from_out
from lens.export.report import write_html
from lens.export.results import (
    Results,
    build_results,
    load_results,
    recommendation_out,
    results_json_schema,
    write_records_jsonl,
    write_results,
)
from lens.export.table import render, render_recommendation
from lens.metrics.cost import record_cost
from lens.metrics.estimate import plan_estimate, request_bound
from lens.metrics.judge import distrust, judge
from lens.metrics.recommend import recommend
from lens.metrics.summary import Summary, SummaryBuilder
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan, ProviderSpec, SlaSpec
from lens.pricing import PricingCatalog
from lens.records import Phase, RequestRecord
from lens.run.budget import BudgetGuard
from lens.run.harness import HarnessLimits, HarnessMonitor
from lens.run.session import RunOutcome, run_blocking
from lens.run.simulators import live_providers
from lens.scenario import load_scenario
from lens.scenario.env import interpolate
from lens.scenario.schema import scenario_json_schema
from lens.scenario.sla import SlaSyntaxError, parse_sla
from lens.sim.server import main as sim_main
from lens.sweeps.driver import SweepDriver
from lens.targets import ExportTarget, TargetError, parse_target

EXIT_SLA_FAILED = 1
EXIT_INPUT = 2
EXIT_EXPORT = 4


def load_plan(path: str) -> Plan:
    return compile_plan(load_scenario(path), source=path)


def cmd_validate(args: argparse.Namespace) -> int:
    worst = 0
    for path in args.files:
        try:
            plan = load_plan(path)
        except InputError as exc:
            _print_problems(exc, sys.stderr)
            worst = EXIT_INPUT
        else:
            units = len(plan.stages)
            print(f"{path}: ok ({len(plan.providers)} providers, {units} stage runs)")
    return worst


def cmd_plan(args: argparse.Namespace) -> int:
    plan = load_plan(args.file)
    doc = plan_to_dict(plan, arrivals=args.json)
    doc["cost_estimate"] = cost_estimate_dict(plan)
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(_plan_text(doc))
    return 0


def cost_estimate_dict(plan: Plan) -> dict[str, object]:
    """Upper bound of what the plan may cost (money as decimal strings)."""
    units = plan_estimate(plan)
    known = [u.usd for u in units if u.usd is not None]
    return {
        "upper_bound": True,
        "total_usd": str(sum(known, Decimal(0))) if known else None,
        "complete": len(known) == len(units),
        "units": [
            {
                "stage": u.stage,
                "provider": u.provider,
                "usd": None if u.usd is None else str(u.usd),
                "basis": u.basis,
            }
            for u in units
        ],
        "budget_usd": None if plan.budget_usd is None else str(plan.budget_usd),
    }


def _usd(text: object) -> str:
    return "-" if text is None else f"${Decimal(str(text)):.6f}".rstrip("0").rstrip(".")


def _plan_text(doc: dict[str, object]) -> str:
    stages = doc["stages"]
    estimate = doc["cost_estimate"]
    assert isinstance(stages, list)
    assert isinstance(estimate, dict)
    ranges = _sweep_ranges(stages)
    rows = []
    for s, cost in zip(stages, estimate["units"], strict=True):
        arr = s.get("arrivals")
        sched = gaps = ""
        if arr:
            rate = arr["mean_rate_per_s"]
            sched = f"{arr['count']} arrivals over {arr['span_s']:.2f}s" + (
                f" ({rate:.2f}/s)" if rate else ""
            )
            if arr["max_gap_s"] is not None:
                gaps = f"{arr['min_gap_s']:.3g}-{arr['max_gap_s']:.3g}s"
        elif s.get("concurrency"):
            sched = f"{s['concurrency']} in flight"
        elif "idle_gaps_s" in s:
            sched = "probes after idle " + ", ".join(f"{g:g}s" for g in s["idle_gaps_s"])
        exp = s["expected_duration_s"]
        rows.append(
            [
                s["stage"],
                s["provider"],
                s["pattern"],
                s["requests"] if s["requests"] is not None else "until duration",
                sched,
                _load_text(s, ranges),
                gaps,
                "-" if exp is None else f"{exp:.1f}s",
                _usd(cost["usd"]),
                ", ".join(s["prompts"]),
            ]
        )
    headers = [
        "stage", "provider", "pattern", "requests", "schedule", "load", "gaps", "expected",
        "cost <=", "prompts",
    ]  # fmt: skip
    total = doc["expected_duration_s"]
    lines = [
        f"plan: {doc['scenario']} ({doc['source']})",
        tabulate(rows, headers=headers, disable_numparse=True),
        f"total requests: {doc['total_requests'] if doc['total_requests'] is not None else '?'}"
        f"; expected duration: {'?' if total is None else f'{total:.1f}s'}",
    ]
    if estimate["total_usd"] is not None:
        partial = "" if estimate["complete"] else " for the priced stages"
        lines.append(
            f"estimated cost: at most {_usd(estimate['total_usd'])}{partial} (every request "
            "at its output limit)"
        )
    budget = estimate["budget_usd"]
    if budget is not None:
        over = estimate["total_usd"] is not None and Decimal(estimate["total_usd"]) > Decimal(
            budget
        )
        lines.append(
            f"budget: {_usd(budget)}"
            + (": the run may stop early to stay within it" if over else "")
        )
    adaptive = doc["adaptive_sweeps"]
    assert isinstance(adaptive, list)
    lines.extend(_adaptive_text(sweep) for sweep in adaptive)
    slas = doc["sla"]
    assert isinstance(slas, list)
    if slas:
        lines.append("SLA: " + "; ".join(s["assert"] for s in slas))
    warnings = doc["warnings"]
    assert isinstance(warnings, list)
    lines.extend(f"warning: {w}" for w in warnings)
    lines.append("nothing was sent")
    return "\n".join(lines)


def _adaptive_text(sweep: dict[str, Any]) -> str:
    """What an adaptive sweep leaves to the run: the table shows only its known steps."""
    conditions = sweep.get("conditions", [])
    if sweep["kind"] == "stop_when":
        return (
            f"sweep {sweep['id']}: stops after the first step where {' or '.join(conditions)} "
            "holds; which steps run is decided at run time"
        )
    if sweep["kind"] == "find_max_rate":
        bounds = [f"precision {sweep['precision']}"] if "precision" in sweep else []
        bounds += [f"at most {sweep['max_steps']} steps"] if "max_steps" in sweep else []
        return (
            f"sweep {sweep['id']}: searches {sweep['rate_from_per_s']:g}-"
            f"{sweep['rate_to_per_s']:g}/s for the highest rate meeting "
            f"{' and '.join(conditions)} ({', '.join(bounds)}); the table lists its two "
            "bounds, the steps between them are decided at run time"
        )
    return (
        f"sweep {sweep['id']}: after its synchronous and saturation steps, "
        f"{sweep['auto_steps']} rate steps between the measured throughputs, decided at run "
        "time"
    )


def _sweep_ranges(stages: list[dict[str, Any]]) -> dict[str, str]:
    """The range each sweep covers, e.g. ``1-5/s`` or ``1-16 in flight``, by sweep id."""
    values: dict[str, list[float]] = {}
    unit: dict[str, str] = {}
    for s in stages:
        step = s.get("sweep")
        if step is not None:
            rate = step.get("rate_per_s")
            values.setdefault(step["id"], []).append(step["concurrency"] if rate is None else rate)
            unit[step["id"]] = " in flight" if rate is None else "/s"
    return {sweep: f"{min(v):g}-{max(v):g}{unit[sweep]}" for sweep, v in values.items()}


def _load_text(s: dict[str, Any], ranges: dict[str, str]) -> str:
    """How the load was shaped: the intended rate (a ramp's range), the arrival process,
    a sweep step's place; a pause before the unit."""
    parts = []
    arr = s.get("arrivals") or {}
    if "rate_from_per_s" in arr:
        low, high = arr["rate_from_per_s"], arr["rate_to_per_s"]
        parts.append(f"{low:g}/s" if low == high else f"{low:g}->{high:g}/s")
    if arr.get("process") in ("poisson", "gamma"):
        shape = f" k={arr['burstiness']:g}" if "burstiness" in arr else ""
        parts.append(f"{arr['process']}{shape} seed {arr['seed']}")
    if "sweep" in s:
        step = s["sweep"]
        of = "" if step["steps"] is None else f"/{step['steps']}"
        where = f"step {step['step'] + 1}{of} of {step['id']} ({ranges[step['id']]})"
        parts.append(where)
    if s.get("pause_before_s"):
        parts.append(f"{s['pause_before_s']:g}s pause first")
    return ", ".join([*parts, *_phase_text(s)])


def _phase_text(s: dict[str, Any]) -> list[str]:
    """Warmup, cooldown and drain, as the plan resolved them: ``warmup #0-1`` (request
    indices) or ``warmup <5s``, ``cooldown #15+`` or ``cooldown >=55s``, ``drain cancel``."""
    parts = []
    phases = s.get("phases", {})
    if "warmup_requests" in phases:
        parts.append(f"warmup #0-{phases['warmup_requests'] - 1}")
    if "warmup_s" in phases:
        parts.append(f"warmup <{phases['warmup_s']:g}s")
    if "cooldown_from_request" in phases:
        parts.append(f"cooldown #{phases['cooldown_from_request']}+")
    if "cooldown_from_s" in phases:
        parts.append(f"cooldown >={phases['cooldown_from_s']:g}s")
    if phases.get("sla_includes_warmup"):
        parts.append("judged with warmup")
    drain = s.get("drain")
    if drain is not None:
        grace = drain["timeout_s"]
        parts.append(f"drain {drain['policy']}" + (f" after {grace:g}s" if grace else ""))
    return parts


def cli_targets(specs: Sequence[str], flag: str) -> list[ExportTarget]:
    """``KIND=DEST`` flags, ``${VAR}`` expanded from the environment, checked up front so
    a typo fails before a long run rather than after it."""
    targets, problems = [], []
    for spec in specs:
        expanded = interpolate(spec, os.environ)
        if expanded.problems:
            problems += [f"{flag}: {p.message}" for p in expanded.problems]
            continue
        try:
            targets.append(parse_target(expanded.value))
        except TargetError as exc:
            problems.append(f"{flag}: {exc}")
    if problems:
        raise InputError([Problem(p) for p in problems])
    return targets


def _export(results: Results, targets: Sequence[ExportTarget]) -> int:
    """Exit code after exporting: the results' own, or 4 for a failed export unless an SLA
    failed (that is the news a CI job needs first)."""
    failures = export_all(results, targets)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if failures and results.exit_code != EXIT_SLA_FAILED:
        return EXIT_EXPORT
    return results.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    plan = load_plan(args.file)
    targets = [ExportTarget(e.kind, e.dest.reveal()) for e in plan.exports]
    targets += cli_targets(args.export, "--export")
    progress = None if args.quiet else sys.stderr
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    budget = budget_guard(plan)
    harness = HarnessMonitor(HarnessLimits(plan.integrity.max_loop_lag_ms, plan.integrity.max_cpu))
    sweeps = SweepDriver(plan)
    with live_providers(plan) as providers:
        outcome = run_blocking(
            plan,
            providers,
            progress_out=progress,
            tty=sys.stderr.isatty(),
            budget=budget,
            harness=harness,
            drive=sweeps.drive,
            on_record=sweeps.record,
        )
    slas = sweeps.scoped(plan.slas)  # a scope naming a sweep takes in its run-time steps
    summaries, phase_summaries = summarise(plan, outcome, slas)
    verdicts = judge(slas, summaries)
    if outcome.harness is not None:
        verdicts = distrust(verdicts, outcome.harness.reasons)
    results = build_results(
        plan, outcome, summaries, verdicts, phase_summaries, sweeps=sweeps.outcomes
    )
    if results.integrity is not None:
        for warning in results.integrity.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    _write_outputs(results, args)
    if budget is not None and budget.exhausted:
        sent = sum(w.started for w in outcome.windows)
        print(
            f"budget {_usd(str(budget.limit))} reached after {sent} requests (spent "
            f"{_usd(str(budget.spent))}): no further requests were sent; results are partial",
            file=sys.stderr,
        )
    elif outcome.partial:
        print(
            f"run interrupted by {outcome.interrupted_by}: results are partial "
            f"({len(outcome.records)} requests measured)",
            file=sys.stderr,
        )
    return _export(results, targets)


def summarise(
    plan: Plan, outcome: RunOutcome, slas: tuple[SlaSpec, ...]
) -> tuple[tuple[Summary, ...], tuple[Summary, ...]]:
    """The measured summaries (judged) and the warmup/cooldown ones, each over its own part
    of the stage window; a stage with ``sla_includes_warmup`` pools them, over its whole
    window."""
    pooled = frozenset(u.stage for u in plan.stages if u.phases.pooled)
    builder = SummaryBuilder(providers=plan.providers, slas=slas, pooled_stages=pooled)
    builder.add_many(outcome.records)
    windows = {
        (w.stage, w.provider): (w.t_start, w.t_end) if w.stage in pooled else w.span("measure")
        for w in outcome.windows
    }
    set_apart: tuple[Phase, ...] = ("warmup", "cooldown")
    phase_windows = {
        (w.stage, w.provider, phase): w.span(phase) for w in outcome.windows for phase in set_apart
    }
    return builder.build(windows), builder.build_phases(phase_windows)


def cmd_export(args: argparse.Namespace) -> int:
    targets = cli_targets(args.to, "--to")
    return _export(load_results(Path(args.results)), targets)


def budget_guard(plan: Plan) -> BudgetGuard | None:
    if plan.budget_usd is None:
        return None

    def cost(rec: RequestRecord, spec: ProviderSpec) -> Decimal | None:
        breakdown = record_cost(rec, spec)
        return None if breakdown is None else breakdown.total

    return BudgetGuard(plan.budget_usd, request_bound, cost)


def _write_outputs(results: Results, args: argparse.Namespace) -> None:
    if args.output:
        write_results(results, Path(args.output))
    if args.records:
        write_records_jsonl(results, Path(args.records))
    if args.format == "json":
        sys.stdout.write(results.model_dump_json(indent=1) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(render(results, "github"))
    elif not args.quiet or args.format == "table":
        sys.stdout.write(render(results))


def cmd_report(args: argparse.Namespace) -> int:
    source = Path(args.results)
    dest = Path(args.output) if args.output else source.with_suffix(".html")
    write_html(load_results(source), dest)
    print(f"wrote {dest}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    schemas = {
        "scenario-v1.json": scenario_json_schema(),
        "results-v1.json": results_json_schema(),
    }
    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for name, doc in schemas.items():
            (out / name).write_text(schema_text(doc), encoding="utf-8")
            print(f"wrote {out / name}")
        return 0
    sys.stdout.write(schema_text(schemas[f"{args.which}-v1.json"]))
    return 0


def schema_text(doc: dict[str, object]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def cmd_pricing(args: argparse.Namespace) -> int:
    catalog = PricingCatalog.load()
    entries = [
        e
        for e in catalog.entries
        if (args.provider is None or e.provider == args.provider)
        and (
            args.model is None
            or args.model.lower() in (e.model.lower(), *map(str.lower, e.aliases))
        )
    ]
    if args.model is not None and args.provider is not None and not entries:
        found = catalog.lookup(args.provider, args.model)
        entries = [found] if found is not None else []
    if not entries:
        print("no price known for that provider/model", file=sys.stderr)
        return EXIT_INPUT
    rows = [
        [
            e.provider,
            e.model,
            e.rates.input,
            e.rates.cached_input if e.rates.cached_input is not None else "-",
            e.rates.cache_write if e.rates.cache_write is not None else "-",
            e.rates.output,
            ", ".join(f">{t.above_input_tokens}" for t in e.tiers) or "-",
            f"-{(e.batch_discount * 100).normalize():f}%" if e.batch_discount is not None else "-",
            e.checked.isoformat(),
        ]
        for e in entries
    ]
    headers = [
        "provider",
        "model",
        "input",
        "cached",
        "cache write",
        "output",
        "tiers",
        "batch",
        "checked",
    ]
    print(
        "USD per 1M tokens (list prices; reasoning billed as output; batch: the discount of "
        "the provider's asynchronous batch API, which lens's streaming requests do not get)"
    )
    print(tabulate(rows, headers=headers, disable_numparse=True))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    results = load_results(Path(args.results))
    try:
        slas = tuple(SlaSpec(parse_sla(text), where="--sla") for text in args.sla)
    except SlaSyntaxError as exc:
        raise InputError(str(exc)) from exc
    stages = None if args.stage is None else frozenset(args.stage)
    known = list(dict.fromkeys(s.stage for s in results.summaries))
    unknown = sorted((stages or frozenset()) - set(known))
    if unknown:
        raise InputError(
            f"no stage {', '.join(unknown)} in the results; stages: {', '.join(known) or 'none'}"
        )
    if slas:
        summaries, verdicts = rejudge(results, slas)
    else:
        summaries = [summary_from_out(s) for s in results.summaries]
        verdicts = tuple(verdict_from_out(v) for v in results.verdicts)
    models = {s.provider: s.model for s in results.summaries}
    rec = recommendation_out(recommend(summaries, verdicts, models, stages))
    if args.json:
        sys.stdout.write(rec.model_dump_json(indent=1) + "\n")
    else:
        sys.stdout.write(render_recommendation(rec))
    return 0 if rec.best is not None else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lens", description="Measure how fast and how costly LLM APIs really are."
    )
    p.add_argument("--version", action="version", version=f"lens {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate scenario files (exit 0 ok, 2 invalid)")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=cmd_validate)

    pl = sub.add_parser("plan", help="show the resolved execution plan; nothing is sent")
    pl.add_argument("file", metavar="FILE")
    pl.add_argument("--json", action="store_true", help="the plan as JSON, every arrival listed")
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser("run", help="run a scenario and judge its SLAs")
    r.add_argument("file", metavar="FILE")
    r.add_argument("-o", "--output", metavar="RESULTS.json", help="write results JSON here")
    r.add_argument("--records", metavar="FILE.jsonl", help="also write one line per request")
    r.add_argument("--format", choices=("table", "json", "markdown"), default=None)
    r.add_argument("-q", "--quiet", action="store_true", help="no progress, no table")
    r.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="KIND=DEST",
        help="also export to DEST (repeatable): csv=, prometheus=, influx=, junit=, markdown=",
    )
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("export", help="export a saved results file (exit 4 if an export fails)")
    e.add_argument("results", metavar="RESULTS.json")
    e.add_argument("--to", action="append", required=True, metavar="KIND=DEST", help="repeatable")
    e.set_defaults(func=cmd_export)

    rp = sub.add_parser("report", help="draw a self-contained HTML report of a results file")
    rp.add_argument("results", metavar="RESULTS.json")
    rp.add_argument(
        "-o", "--output", metavar="REPORT.html", help="default: RESULTS.json with .html"
    )
    rp.set_defaults(func=cmd_report)

    rc = sub.add_parser(
        "recommend",
        help="the cheapest provider meeting the SLA, from a results file (exit 0 found, 1 none)",
    )
    rc.add_argument("results", metavar="RESULTS.json")
    rc.add_argument(
        "--sla",
        action="append",
        default=[],
        metavar="EXPR",
        help="judge against this SLA instead of the run's (repeatable), e.g. 'ttft.p95 < 500ms'",
    )
    rc.add_argument("--stage", action="append", metavar="ID", help="only these stages (repeatable)")
    rc.add_argument("--json", action="store_true", help="machine-readable output")
    rc.set_defaults(func=cmd_recommend)

    s = sub.add_parser("schema", help="print the JSON Schema of scenarios (or results)")
    s.add_argument("which", nargs="?", choices=("scenario", "results"), default="scenario")
    s.add_argument("--write", metavar="DIR", help="write every schema into DIR")
    s.set_defaults(func=cmd_schema)

    pr = sub.add_parser("pricing", help="print the pricing catalog (USD per 1M tokens)")
    pr.add_argument("--provider", help="e.g. openai, anthropic, gemini, bedrock, azure-openai")
    pr.add_argument("--model", help="a model id, alias or dated snapshot")
    pr.set_defaults(func=cmd_pricing)

    sub.add_parser(
        "serve-sim",
        help="run the simulated server standalone (any provider protocol: --protocol)",
        add_help=False,
    )
    return p


def _print_problems(exc: InputError, out: TextIO) -> None:
    for problem in exc.problems:
        print(f"error: {problem}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-sim"]:
        # The simulator owns its flags (and its --help); argparse would claim them.
        return sim_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except InputError as exc:
        _print_problems(exc, sys.stderr)
        return EXIT_INPUT
    except LensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
