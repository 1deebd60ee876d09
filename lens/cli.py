"""The ``lens`` command: argv in, exit code out.

Each command is a thin wrapper over the library API (``lens.api``, what ``import lens``
offers): ``lens run`` is ``load_scenario`` → ``compile_plan`` → ``lens.pipeline.run_plan``
(the run behind ``lens.run``, whose report also carries the budget spent) → write →
``export``; this module adds only what concerns the terminal.
Exit codes: 0 every SLA passed, 1 an SLA failed, 2 invalid
input, 3 only inconclusive verdicts, 4 an export failed (and no SLA did: 1 wins), 130
interrupted before anything ran, 5 lens itself failed (every code is in lens.exitcodes).
``lens recommend`` exits 0 when some provider is eligible, 1 when none is, 2 on invalid
input.  ``lens compare`` exits 0 when nothing regressed, 1 when something did, 3 when
only inconclusive checks stand in the way, 2 on invalid input.

``main`` is the process's one error boundary: an unexpected exception anywhere prints one
line (what failed, and the file holding the full traceback, secrets redacted) and exits 5,
after ``lens run`` has written what it measured.  Every text printed passes through the
run's ``Redactor`` (lens.redact).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from tabulate import tabulate

from lens import api, exitcodes
from lens._version import __version__
from lens.errors import ExportError, InputError, LensError, Problem, describe, innermost
from lens.export import comparison as comparison_view
from lens.export.plan_view import plan_text, usd
from lens.export.registry import EXPORTERS
from lens.export.results import (
    RecordsLog,
    Results,
    results_json_schema,
    write_records_jsonl,
    write_results,
)
from lens.export.sink import append_text, write_atomic
from lens.export.table import render, render_recommendation
from lens.metrics.estimate import estimate_to_dict
from lens.monitor.service import monitored_scenario, resolve_config, run_monitor
from lens.pipeline import run_plan
from lens.plan.compile import records_kept
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan
from lens.plan.split import parse_shard, planned_starts
from lens.pricing import PricingCatalog
from lens.redact import Redactor
from lens.run.start import check_not_passed, parse_start_at, utc_now
from lens.scenario.env import interpolate
from lens.scenario.model import MAX_REPEAT, Scenario
from lens.scenario.schema import scenario_json_schema, schema_text
from lens.sim.server import main as sim_main
from lens.targets import ExportTarget, secrets_of
from lens.workers import Workers, resolve_workers, run_workers

EXIT_SLA_FAILED = exitcodes.SLA_FAILED
EXIT_INPUT = exitcodes.INPUT
EXIT_EXPORT = exitcodes.EXPORT_FAILED


def load_plan(path: str, *, allow_files_outside: bool = False, repeat: int | None = None) -> Plan:
    scenario = api.load_scenario(path, allow_files_outside=allow_files_outside)
    return api.compile_plan(scenario, repeat=repeat)


def _redactor(args: argparse.Namespace, plan: Plan) -> Redactor:
    """The plan's redactor, also kept on ``args`` for the process's error boundary."""
    redact = Redactor.for_plan(plan, os.environ)
    args.redactor = redact
    return redact


def cmd_validate(args: argparse.Namespace) -> int:
    worst = 0
    for path in args.files:
        try:
            plan = load_plan(path, allow_files_outside=args.allow_files_outside)
        except InputError as exc:
            _print_problems(exc, sys.stderr, args.redactor)
            worst = EXIT_INPUT
        else:
            units = len(plan.stages)
            print(
                f"{path}: ok ({_count(len(plan.providers), 'provider')}, "
                f"{_count(units, 'stage run')})"
            )
    return worst


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cmd_plan(args: argparse.Namespace) -> int:
    plan = load_plan(args.file, allow_files_outside=args.allow_files_outside, repeat=args.repeat)
    redact = _redactor(args, plan)
    doc = plan_to_dict(plan, arrivals=args.json)
    doc["cost_estimate"] = estimate_to_dict(plan)
    doc = redact.tree(doc)
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(plan_text(doc))
    return 0


def cli_targets(specs: Sequence[str], flag: str) -> list[ExportTarget]:
    """``KIND=DEST`` flags, ``${VAR}`` expanded from the environment, checked up front so
    a typo fails before a long run rather than after it."""
    targets, problems = api.parse_targets(specs, os.environ, flag)
    if problems:
        raise InputError(problems)
    return targets


def _export(
    results: Results, targets: Sequence[ExportTarget], redact: Redactor | None = None
) -> int:
    """Exit code after exporting: the results' own, or 4 for a failed export unless an SLA
    failed (that is the news a CI job needs first)."""
    try:
        api.export(results, *targets)
    except ExportError as exc:
        for failure in exc.failures:
            print(f"error: {(redact or Redactor())(failure)}", file=sys.stderr)
        if results.exit_code != EXIT_SLA_FAILED:
            return EXIT_EXPORT
    return results.exit_code


def _planned_text(plan: Plan) -> str | None:
    """A shard's planned stage starts, for people (None: no stage after the first is)."""
    starts = planned_starts(plan)
    planned = [
        f"{unit.stage} at +{offset:.1f}s"
        for unit, offset in zip(plan.stages, starts.offsets, strict=True)
        if offset is not None
    ]
    if not planned:
        return None
    return (
        f"later stages start at --start-at + their planned offset: {', '.join(planned)} "
        "(each when the stage before has surely ended: its schedule or duration, then its "
        "requests in flight within their timeout, or drain_timeout if shorter)"
    )


def run_plan_of(path: str, *, allow_files_outside: bool = False, repeat: int | None = None) -> Plan:
    """The plan ``lens run`` executes: with ``tokenizer: server``, loaded and compiled inside
    the tokenizer pre-flight (lens.api.preflight_plan), before anything is measured."""
    return api.preflight_plan(
        lambda: load_plan(path, allow_files_outside=allow_files_outside, repeat=repeat)
    )


def cmd_run(args: argparse.Namespace) -> int:
    plan = run_plan_of(args.file, allow_files_outside=args.allow_files_outside, repeat=args.repeat)
    if args.results_records is not None:
        plan = dataclasses.replace(
            plan,
            results_records=records_kept(args.results_records),
            results_records_default=False,
        )
    redact = _redactor(args, plan)
    flagged = cli_targets(args.export, "--export")
    if flagged:
        redact = args.redactor = redact.with_secrets(
            (secret, "--export destination") for t in flagged for secret in secrets_of(t.dest)
        )
    targets = [ExportTarget(e.kind, e.dest.reveal()) for e in plan.exports] + flagged
    for what in redact.skipped:
        print(
            f"warning: {what} is shorter than 4 characters: it is not redacted from output",
            file=sys.stderr,
        )
    for warning in plan.warnings:
        print(f"warning: {redact(warning)}", file=sys.stderr)
    # Read before anything is sent: a mistyped baseline fails now, not after the run.
    baseline = api.load_baseline(plan, args.baseline)
    shard = parse_shard(args.shard) if args.shard else None
    if shard is not None and shard.count > 1 and (drift := planned_starts(plan).warning()):
        print(f"warning: {drift}", file=sys.stderr)
    start_at = parse_start_at(args.start_at, utc_now()) if args.start_at else None
    if start_at is not None:
        check_not_passed(start_at)  # now, before the simulators start
        if not args.quiet:
            print(f"waiting for --start-at {start_at.isoformat()}", file=sys.stderr)
            if shard is not None and shard.count > 1 and (planned := _planned_text(plan)):
                print(planned, file=sys.stderr)
    workers = resolve_workers(plan, args.workers)
    if workers > 1 and shard is not None:
        raise InputError(
            f"--workers {workers} with --shard {shard}: run each shard in one process (give "
            "more shards instead)"
        )
    if workers > 1 and not args.quiet:
        print(f"running in {workers} worker processes", file=sys.stderr)
    progress = None if args.quiet else sys.stderr
    # --records is written as requests finish, so a killed run leaves every finished one.
    log = _records_log(Path(args.records), plan) if args.records else None
    try:
        if workers > 1:
            report = run_workers(
                plan,
                workers,
                progress_out=progress,
                tty=sys.stderr.isatty(),
                on_record=None if log is None else log.write,
                redactor=redact,
                baseline=baseline,
                start_at=start_at,
            )
        else:
            report = run_plan(
                plan,
                progress_out=progress,
                tty=sys.stderr.isatty(),
                on_record=None if log is None else log.write,
                redactor=redact,
                baseline=baseline,
                shard=shard,
                start_at=start_at,
            )
    finally:
        if log is not None:
            log.close()
    results, outcome, budget = report.results, report.outcome, report.budget
    if log is not None and results.records_omitted:
        args.records = None  # its streamed lines are the complete ones: results list a sample
    if results.records_omitted and plan.results_records_default and results.records:
        print(
            f"warning: results.json lists an evenly spaced sample of {len(results.records)} "
            f"of {len(results.records) + results.records_omitted} records (lens's default "
            "limit; summaries cover every one): --results-records all lists them all, "
            "--records FILE.jsonl streams every one",
            file=sys.stderr,
        )
    if report.failure is not None:
        # lens failed after measuring: write what was measured, then the boundary says so.
        _write_files(results, args)
        raise report.failure
    if results.integrity is not None:
        for warning in results.integrity.warnings:
            print(f"warning: {redact(warning)}", file=sys.stderr)
    if report.regression_problem is not None:
        print(
            f"warning: not compared with the baseline: {redact(report.regression_problem)}",
            file=sys.stderr,
        )
    _write_outputs(results, args)
    if budget is not None and budget.exhausted:
        sent = sum(w.started for w in outcome.windows)
        print(
            f"budget {usd(str(budget.limit))} reached after {sent} requests (spent "
            f"{usd(str(budget.spent))}): no further requests were sent; results are partial",
            file=sys.stderr,
        )
    elif report.sla_stop is not None:
        print(
            f"stopped early (stop_on_fail): {report.sla_stop}; results are partial "
            f"({outcome.measured} requests measured)",
            file=sys.stderr,
        )
    elif outcome.partial:
        print(
            f"run interrupted by {outcome.interrupted_by}: results are partial "
            f"({outcome.measured} requests measured)",
            file=sys.stderr,
        )
    return _export(results, targets, redact)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Runs until SIGTERM/SIGINT (exit 0); ``--once``: one cycle, its exit code."""
    loaded: list[Scenario] = []

    def load() -> Plan:
        # Loaded and compiled in tokenizer: server's pre-flight, once, before any cycle.
        loaded.append(api.load_scenario(args.file, allow_files_outside=args.allow_files_outside))
        return api.compile_plan(monitored_scenario(loaded[0]))

    plan = api.preflight_plan(load)
    scenario = loaded[0]
    seed = os.environ.get("LENS_MONITOR_SEED")
    if seed is not None and not seed.strip().lstrip("-").isdigit():
        raise InputError(f"LENS_MONITOR_SEED: expected a whole number, got {seed!r}")
    config = resolve_config(
        scenario,
        every=args.every,
        jitter=args.jitter,
        listen=args.listen,
        store=args.store,
        once=args.once,
        seed=None if seed is None else int(seed),
    )
    redact = _redactor(args, plan)
    flagged = cli_targets(args.export, "--export")
    if flagged:
        redact = args.redactor = redact.with_secrets(
            (secret, "--export destination") for t in flagged for secret in secrets_of(t.dest)
        )
    for warning in (*config.notes, *plan.warnings):
        print(f"warning: {redact(warning)}", file=sys.stderr)
    targets = [ExportTarget(e.kind, e.dest.reveal()) for e in plan.exports] + flagged
    return run_monitor(plan, config, redactor=redact, targets=targets)


def cmd_merge(args: argparse.Namespace) -> int:
    """The shards' results as one run's: written, shown and exported as ``lens run`` does,
    with its exit codes (2 when the shards do not make one whole run)."""
    targets = cli_targets(args.export, "--export")
    results = api.merge(args.shards)
    if results.integrity is not None:
        for warning in results.integrity.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    _write_outputs(results, args)
    if results.partial:
        print(
            f"a shard was interrupted ({results.interrupted_by}): merged results are partial",
            file=sys.stderr,
        )
    return _export(results, targets)


def cmd_export(args: argparse.Namespace) -> int:
    """Export's own exit code: 0 exported, 4 an export failed, 2 bad input.  The saved
    run's SLA result is a different question; ``--exit-code-from-results`` repeats it
    (with 4 still winning over a pass, and 1 over a failed export, as ``lens run``)."""
    targets = cli_targets(args.to, "--to")
    results = api.load_results(args.results)
    if args.exit_code_from_results:
        return _export(results, targets)
    try:
        api.export(results, *targets)
    except ExportError as exc:
        for failure in exc.failures:
            print(f"error: {Redactor()(failure)}", file=sys.stderr)
        return EXIT_EXPORT
    return exitcodes.OK


def _results_flags(
    parser: argparse.ArgumentParser, *, quiet: str, output: str = "write results JSON here"
) -> None:
    """What ``lens run`` and ``lens merge`` both do with the results they end with: write,
    show and export them (``_write_outputs``, ``_export``)."""
    parser.add_argument("-o", "--output", metavar="RESULTS.json", help=output)
    parser.add_argument("--records", metavar="FILE.jsonl", help="also write one line per request")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default=None)
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet)
    parser.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="KIND=DEST",
        help=f"also export to DEST (repeatable): {_KINDS}",
    )


def _records_kept(text: str) -> str | int:
    if text in ("all", "none"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected all, none or a count, got {text!r}")


def _records_log(path: Path, plan: Plan) -> RecordsLog:
    try:
        return RecordsLog(path, plan)
    except OSError as exc:
        raise InputError(f"--records {path}: cannot write there: {describe(exc)}") from exc


def _write_files(results: Results, args: argparse.Namespace) -> None:
    if args.output:
        write_results(results, Path(args.output))
    if args.records:
        write_records_jsonl(results, Path(args.records))


def _write_outputs(results: Results, args: argparse.Namespace) -> None:
    _write_files(results, args)
    if args.format == "json":
        sys.stdout.write(results.model_dump_json(indent=1) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(render(results, "github"))
    elif not args.quiet or args.format == "table":
        sys.stdout.write(render(results))


def cmd_report(args: argparse.Namespace) -> int:
    source = Path(args.results)
    dest = Path(args.output) if args.output else source.with_suffix(".html")
    api.report(api.load_results(source), dest)
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
    results = api.load_results(args.results)
    rec = api.recommend(results, args.sla, stages=args.stage)
    if args.json:
        sys.stdout.write(rec.model_dump_json(indent=1) + "\n")
    else:
        sys.stdout.write(render_recommendation(rec))
    return 0 if rec.best is not None else 1


# What `lens compare --export` writes: the comparison, not a run's results.
_COMPARE_EXPORTS = ("junit", "markdown", "json")


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 0 nothing regressed, 1 something regressed, 3 only inconclusive, 2 bad input,
    4 an export failed (and nothing regressed: 1 wins, as for lens run)."""
    targets = _compare_targets(args.export)
    comparison = api.compare(
        args.baseline,
        args.current,
        thresholds=args.threshold,
        stages=args.stage,
        providers=args.provider,
    )
    renderers = {
        "table": comparison_view.render_table,
        "markdown": comparison_view.render_markdown,
        "json": comparison_view.render_json,
    }
    sys.stdout.write(renderers[args.format](comparison))
    code = comparison.exit_code
    writers = {
        "junit": comparison_view.junit_comparison,
        "markdown": comparison_view.render_markdown,
        "json": comparison_view.render_json,
    }
    for kind, dest in targets:
        # markdown= appends, as lens's markdown exporter: $GITHUB_STEP_SUMMARY collects
        # what each step appends.
        write = append_text if kind == "markdown" else write_atomic
        try:
            write(dest, writers[kind](comparison))
        except OSError as exc:
            print(f"error: {kind}={dest}: {describe(exc)}", file=sys.stderr)
            if code != exitcodes.REGRESSED:
                code = EXIT_EXPORT
    return code


def _compare_targets(specs: Sequence[str]) -> list[tuple[str, Path]]:
    """``KIND=FILE`` flags of ``lens compare`` (``${VAR}`` expanded, as ``--export`` of
    ``lens run``), checked before anything is compared."""
    targets: list[tuple[str, Path]] = []
    problems: list[Problem] = []
    for spec in specs:
        expanded = interpolate(spec, os.environ)
        kind, eq, dest = expanded.value.partition("=")
        if expanded.problems:
            problems += [Problem(f"--export: {p.message}") for p in expanded.problems]
        elif not eq or not dest or kind not in _COMPARE_EXPORTS:
            problems.append(
                Problem(
                    f"--export {spec!r}: lens compare writes "
                    f"{', '.join(f'{k}=FILE' for k in _COMPARE_EXPORTS)}"
                )
            )
        else:
            targets.append((kind, Path(dest)))
    if problems:
        raise InputError(problems)
    return targets


_KINDS = ", ".join(f"{kind}=" for kind in EXPORTERS)


def _repeat_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REPEAT:
        raise argparse.ArgumentTypeError(
            f"takes a whole number from 1 to {MAX_REPEAT}, not {text!r}"
        )
    return value


def _workers_count(text: str) -> Workers:
    if text.strip() == "auto":
        return "auto"
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number of workers (1 or more) or auto, got {text!r}"
        )
    return int(text)


def _repeat_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeat",
        type=_repeat_count,
        metavar="N",
        help="run every stage that sets no repeat of its own N times, interleaved across "
        "providers (replaces defaults.repeat; not sweeps or idle probes)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lens", description="Measure how fast and how costly LLM APIs really are."
    )
    p.add_argument("--version", action="version", version=f"lens {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate scenario files (exit 0 ok, 2 invalid)")
    v.add_argument("files", nargs="+", metavar="FILE")
    _files_outside_flag(v)
    v.set_defaults(func=cmd_validate)

    pl = sub.add_parser("plan", help="show the resolved execution plan; nothing is sent")
    pl.add_argument("file", metavar="FILE")
    pl.add_argument(
        "--json",
        action="store_true",
        help="the plan as JSON, arrivals listed (the first 100,000 per stage)",
    )
    _repeat_flag(pl)
    _files_outside_flag(pl)
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser("run", help="run a scenario and judge its SLAs")
    r.add_argument("file", metavar="FILE")
    _results_flags(r, quiet="no progress, no table")
    r.add_argument(
        "--results-records",
        metavar="all|none|N",
        type=_records_kept,
        help="per-request records results.json lists (replaces the scenario's results: "
        "{records: ...}): all, none, or an evenly spaced sample of N; unset: all up to "
        "10,000, a sample of 10,000 beyond (warned)",
    )
    r.add_argument(
        "--baseline",
        metavar="RESULTS.json|git:REF:PATH",
        help="compare the run with these results, as lens compare (replaces the scenario's "
        "regression: baseline); a regression fails the run with exit 1",
    )
    r.add_argument(
        "--shard",
        metavar="I/N",
        help="run shard I (0-based) of N of the plan, for lens merge; auto/N reads I from "
        "JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)",
    )
    r.add_argument(
        "--start-at",
        metavar="ISO8601|+DURATION",
        help="wait until this wall-clock instant (with a time zone, e.g. 2026-12-06T21:00:00Z, "
        "or +30s from now), then start: give every shard the same one",
    )
    r.add_argument(
        "--workers",
        type=_workers_count,
        default=None,
        metavar="N|auto",
        help="run the plan in N worker processes of this machine, merged (auto: from the "
        "plan's peak concurrency and rate and the cores; default: the scenario's "
        "defaults.workers, else 1)",
    )
    _repeat_flag(r)
    _files_outside_flag(r)
    r.set_defaults(func=cmd_run)

    mo = sub.add_parser(
        "monitor",
        help="run the scenario every interval, forever, serving /metrics, /healthz and "
        "/results/latest (exit 0 on SIGTERM; --once: one cycle, its exit code)",
    )
    mo.add_argument("file", metavar="FILE")
    mo.add_argument("--every", metavar="DURATION", help="interval between cycles (default 5m)")
    mo.add_argument(
        "--jitter", metavar="PERCENT", help="start each cycle up to this share late (10%%)"
    )
    mo.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where the endpoints are served (default 127.0.0.1:9464; port 0: a free one, "
        "printed on stderr)",
    )
    mo.add_argument(
        "--store", metavar="DIR", help="write each cycle there; reload the windows on start"
    )
    mo.add_argument(
        "--once", action="store_true", help="one cycle, nothing served, exit with its code"
    )
    mo.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="KIND=DEST",
        help=f"also push each cycle's results to DEST (repeatable): {_KINDS}",
    )
    _files_outside_flag(mo)
    mo.set_defaults(func=cmd_monitor)

    m = sub.add_parser(
        "merge", help="merge the results of the shards of one run (lens run --shard I/N)"
    )
    m.add_argument("shards", nargs="+", metavar="SHARD.json")
    _results_flags(m, quiet="no table", output="write merged results here")
    m.set_defaults(func=cmd_merge)

    e = sub.add_parser(
        "export",
        help="export a saved results file (exit 0 exported, 4 an export failed, 2 bad input)",
    )
    e.add_argument("results", metavar="RESULTS.json")
    e.add_argument(
        "--to", action="append", required=True, metavar="KIND=DEST", help=f"repeatable: {_KINDS}"
    )
    e.add_argument(
        "--exit-code-from-results",
        action="store_true",
        help="exit with the saved run's SLA result (as lens run would) instead of export's own",
    )
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

    cp = sub.add_parser(
        "compare",
        help="compare a run against a baseline run: what got measurably worse "
        "(exit 0 nothing regressed, 1 regressed, 3 only inconclusive, 2 bad input)",
    )
    cp.add_argument("baseline", metavar="BASELINE.json")
    cp.add_argument("current", metavar="CURRENT.json")
    cp.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METRIC.STAT=CHANGE",
        help="how large a change matters (repeatable), relative or absolute: ttft.p95=+10%%, "
        "itl.p50=+2ms, error_rate=+0.5%% (percentage points); default +10%%, +2 points for "
        "rates; "
        "a statistic not compared by default is added",
    )
    cp.add_argument("--stage", action="append", metavar="ID", help="only these stages")
    cp.add_argument("--provider", action="append", metavar="ID", help="only these providers")
    cp.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    cp.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="KIND=FILE",
        help="also write the comparison (repeatable): junit=FILE, json=FILE, markdown=FILE "
        "(appended, e.g. markdown=$GITHUB_STEP_SUMMARY)",
    )
    cp.set_defaults(func=cmd_compare)

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


def _files_outside_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-files-outside",
        action="store_true",
        help="let file: prompts read files outside the scenario's folder (trusted scenarios)",
    )


def _print_problems(exc: InputError, out: TextIO, redact: Redactor) -> None:
    for problem in exc.problems:
        print(f"error: {redact(str(problem))}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-sim"]:
        # The simulator owns its flags (and its --help); argparse would claim them.
        return sim_main(argv[1:])
    args = build_parser().parse_args(argv)
    # Until a command knows the plan's secrets, URLs and echoed credential headers are
    # still masked.
    args.redactor = Redactor()
    try:
        code: int = args.func(args)
    except InputError as exc:
        _print_problems(exc, sys.stderr, args.redactor)
        return EXIT_INPUT
    except LensError as exc:
        print(f"error: {args.redactor(str(exc))}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED
    except Exception as exc:
        return _lens_failed(exc, args)
    return code


def _lens_failed(exc: Exception, args: argparse.Namespace) -> int:
    """The process's boundary: one line on stderr, the traceback in a file, exit 5."""
    leaf = innermost(exc)
    if isinstance(leaf, InputError):  # lens's own errors, raised where a group wrapped them
        _print_problems(leaf, sys.stderr, args.redactor)
        return EXIT_INPUT
    if isinstance(leaf, LensError):
        print(f"error: {args.redactor(str(leaf))}", file=sys.stderr)
        return EXIT_INPUT
    redact: Redactor = args.redactor
    text = redact("".join(traceback.format_exception(exc)))
    try:
        where = str(_write_traceback(text, getattr(args, "output", None)))
    except OSError as err:
        where = f"nowhere (it could not be written: {describe(err)})"
    print(f"lens failed: {redact(describe(leaf))} — full traceback in {where}", file=sys.stderr)
    return exitcodes.LENS_FAILED


def _write_traceback(text: str, results_path: str | None) -> Path:
    """Next to the results file when there is one, else in the temporary directory;
    readable by its owner only (it may quote scenario values)."""
    prefix = f"lens-failure-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-"
    try:
        folder = Path(results_path).parent if results_path else None
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".txt", dir=folder)
    except OSError:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
