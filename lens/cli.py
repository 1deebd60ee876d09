"""The ``lens`` command: argv in, exit code out.

The run command reads as the pipeline it is: load → compile → start simulators → execute →
aggregate → judge → export.  Exit codes: 0 every SLA passed, 1 an SLA failed, 2 invalid
input, 3 only inconclusive verdicts, 130 interrupted before anything ran.  ``lens
recommend`` exits 0 when some provider is eligible, 1 when none is, 2 on invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tabulate import tabulate

from lens._version import __version__
from lens.errors import InputError, LensError
from lens.export.reload import rejudge, summary_from_out, verdict_from_out
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
from lens.metrics.judge import judge
from lens.metrics.recommend import recommend
from lens.metrics.summary import aggregate
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan, SlaSpec
from lens.pricing import PricingCatalog
from lens.run.session import run_blocking
from lens.run.simulators import live_providers
from lens.scenario import load_scenario
from lens.scenario.schema import scenario_json_schema
from lens.scenario.sla import SlaSyntaxError, parse_sla
from lens.sim.server import main as sim_main

EXIT_INPUT = 2


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
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(_plan_text(doc))
    return 0


def _plan_text(doc: dict[str, object]) -> str:
    rows = []
    stages = doc["stages"]
    assert isinstance(stages, list)
    for s in stages:
        arr = s.get("arrivals")
        sched = ""
        if arr:
            rate = arr["mean_rate_per_s"]
            sched = f"{arr['count']} arrivals over {arr['span_s']:.2f}s" + (
                f" ({rate:.2f}/s)" if rate else ""
            )
        elif s.get("concurrency"):
            sched = f"{s['concurrency']} in flight"
        exp = s["expected_duration_s"]
        rows.append(
            [
                s["stage"],
                s["provider"],
                s["pattern"],
                s["requests"] if s["requests"] is not None else "until duration",
                sched,
                "-" if exp is None else f"{exp:.1f}s",
                ", ".join(s["prompts"]),
            ]
        )
    headers = ["stage", "provider", "pattern", "requests", "schedule", "expected", "prompts"]
    total = doc["expected_duration_s"]
    lines = [
        f"plan: {doc['scenario']} ({doc['source']})",
        tabulate(rows, headers=headers, disable_numparse=True),
        f"total requests: {doc['total_requests'] if doc['total_requests'] is not None else '?'}"
        f"; expected duration: {'?' if total is None else f'{total:.1f}s'}",
    ]
    slas = doc["sla"]
    assert isinstance(slas, list)
    if slas:
        lines.append("SLA: " + "; ".join(s["assert"] for s in slas))
    lines.append("nothing was sent")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    plan = load_plan(args.file)
    progress = None if args.quiet else sys.stderr
    with live_providers(plan) as providers:
        outcome = run_blocking(plan, providers, progress_out=progress, tty=sys.stderr.isatty())
    windows = {(w.stage, w.provider): (w.t_start, w.t_end) for w in outcome.windows}
    summaries = aggregate(
        outcome.records, stage_windows=windows, providers=plan.providers, slas=plan.slas
    )
    verdicts = judge(plan.slas, summaries)
    results = build_results(plan, outcome, summaries, verdicts)
    _write_outputs(results, args)
    if outcome.partial:
        print(
            f"run interrupted by {outcome.interrupted_by}: results are partial "
            f"({len(outcome.records)} requests measured)",
            file=sys.stderr,
        )
    return results.exit_code


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
            e.checked.isoformat(),
        ]
        for e in entries
    ]
    headers = ["provider", "model", "input", "cached", "cache write", "output", "tiers", "checked"]
    print("USD per 1M tokens (list prices; reasoning billed as output)")
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
    r.set_defaults(func=cmd_run)

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
