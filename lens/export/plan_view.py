"""``lens plan`` as text: the plan's stages, their load and phases, the cost bound, the
budget, what adaptive sweeps leave to run time, the environment variables the scenario reads
(names only), extra headers (secret values masked) and the response size limits.  It reads
the plan as plain data (``plan_to_dict`` plus the cost estimate), the same document
``lens plan --json`` prints."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tabulate import tabulate


def usd(text: object) -> str:
    """A dollar amount for people: up to six decimals, no trailing zeros."""
    return "-" if text is None else f"${Decimal(str(text)):.6f}".rstrip("0").rstrip(".")


def plan_text(doc: dict[str, object]) -> str:
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
        rows.append(
            [
                s["stage"],
                s["provider"],
                s["pattern"],
                s["requests"] if s["requests"] is not None else "until duration",
                sched,
                _load_text(s, ranges),
                gaps,
                _duration_cell(s),
                usd(cost["usd"]) if cost["bounded"] else "unbounded",
                _prompt_ids(s["prompts"]),
            ]
        )
    headers = [
        "stage", "provider", "pattern", "requests", "schedule", "load", "gaps", "expected",
        "cost <=", "prompts",
    ]  # fmt: skip
    lines = [
        f"plan: {doc['scenario']} ({doc['source']})",
        tabulate(rows, headers=headers, disable_numparse=True),
        f"total requests: {doc['total_requests'] if doc['total_requests'] is not None else '?'}"
        f"; {_total_duration_text(doc)}",
        *_duration_bases(stages),
        *_repetitions_text(stages),
    ]
    providers = doc["providers"]
    assert isinstance(providers, list)
    lines.extend(_sources_text(doc.get("prompt_sources")))
    lines.extend(_preflight_text(doc.get("tokenizer_preflight")))
    lines.extend(_traces_text(stages))
    lines.extend(_body_text(providers, stages))
    lines.extend(_estimate_text(estimate, providers))
    adaptive = doc["adaptive_sweeps"]
    assert isinstance(adaptive, list)
    lines.extend(_adaptive_text(sweep) for sweep in adaptive)
    slas = doc["sla"]
    assert isinstance(slas, list)
    if slas:
        lines.append("SLA: " + "; ".join(_sla_text(s) for s in slas))
    regression = doc.get("regression")
    if isinstance(regression, dict):
        lines.append(_regression_text(regression))
    lines.extend(_config_text(doc))
    warnings = doc["warnings"]
    assert isinstance(warnings, list)
    lines.extend(f"warning: {w}" for w in warnings)
    lines.append("nothing was sent")
    return "\n".join(lines)


# A prompt entry that yields more prompt ids than this shows as one: "chat#* (200)".
_LISTED_IDS = 6


def _prompt_ids(ids: list[str]) -> str:
    """A stage's prompt ids, those of one dataset, synthetic draw or file folded together."""
    by_entry: dict[str, list[str]] = {}
    for pid in ids:
        by_entry.setdefault(pid.split("#", 1)[0], []).append(pid)
    parts = []
    for entry, members in by_entry.items():
        if len(members) > _LISTED_IDS:
            parts.append(f"{entry}#* ({len(members)})")
        else:
            parts.extend(members)
    return ", ".join(parts)


def _sources_text(sources: object) -> list[str]:
    """What each prompt entry yields and how long its prompts are, in tokens."""
    if not isinstance(sources, list) or not any(
        s["prompts"] > 1 or s["kind"] in ("synthetic", "dataset", "conversation") for s in sources
    ):
        return []  # only inline prompts: the table says it all
    lines = ["prompt sources (input tokens min/p50/p90/max):"]
    for s in sources:
        n = s["input_tokens"]
        lengths = f"{n['min']}/{n['p50']}/{n['p90']}/{n['max']}"
        detail = f"; {s['detail']}" if s["detail"] else ""
        lines.append(
            f"  {s['id']}: {s['prompts']} {s['kind']} prompt{'s' if s['prompts'] != 1 else ''}, "
            f"{lengths} ({s['tokenizer']}), output: {s['output']}{detail}"
        )
    return lines


def _preflight_text(preflight: object) -> list[str]:
    """tokenizer: server: the figures above are estimates until lens run's pre-flight."""
    if not isinstance(preflight, dict):
        return []
    where = ", ".join(preflight["origins"])
    if preflight["calls"] is not None:
        return [
            f"tokenizer pre-flight: {preflight['calls']} tokenize calls to {where} in "
            f"{preflight['seconds']:.2f} s, before the run clock started"
        ]
    return [
        f"tokenizer: server: token counts above are estimates; lens run counts them with "
        f"{where}/tokenize in a pre-flight before the run clock starts (about "
        f"{preflight['planned_calls']} calls; texts it must cut cost a few more)"
    ]


_SPARKS = "▁▂▃▄▅▆▇█"


def _traces_text(stages: list[Any]) -> list[str]:
    """Each replayed trace once: its rows, lengths and the rate over the replay."""
    lines = []
    seen: set[str] = set()
    for s in stages:
        t = s.get("trace")
        if t is None or t["sha256"] + s["stage"] in seen:
            continue
        seen.add(t["sha256"] + s["stage"])
        n_in, n_out = t["input_tokens"], t["output_tokens"]
        counts = t["requests_per_bucket"]
        width = t["bucket_s"]
        peak = max(counts)
        spark = "".join(_spark(c, peak) for c in counts)
        shared = t["rows_with_shared_blocks"]
        lines += [
            f"trace {s['stage']}: {t['file']} ({t['format']}), {t['rows']} of {t['rows_read']} "
            f"requests, speedup {t['speedup']:g}; input tokens "
            f"{n_in['min']}/{n_in['p50']}/{n_in['p90']}/{n_in['max']} (min/p50/p90/max, "
            f"{n_in['total']} in all), output {n_out['min']}-{n_out['max']} ({n_out['total']})"
            + (f"; {shared} share blocks of {t['block_tokens']} tokens" if shared else ""),
            f"  rate per {width:.3g}s: {spark} peak {peak} ({peak / width:.3g}/s); requests "
            f"per bucket: {' '.join(str(c) for c in counts)}",
        ]
    return lines


def _spark(count: int, peak: int) -> str:
    """A bar for ``count`` of ``peak``; a blank for none."""
    return _SPARKS[round(count / peak * (len(_SPARKS) - 1))] if count else " "


def _body_text(providers: list[Any], stages: list[Any]) -> list[str]:
    """Extra request fields, as each unit sends them (prompt bodies: lens plan --json)."""
    lines = []
    for p in providers:
        if p.get("output_tokens") == "exact":
            lines.append(
                f"output: {p['id']} asks for exactly max_tokens (ignore_eos: true, "
                "min_tokens = max_tokens)"
            )
        if p.get("tokenizer"):
            lines.append(f"tokenizer: {p['id']} counts responses without usage by {p['tokenizer']}")
        if "endpoint" in p:  # only when not streamed chat (lens.plan.describe)
            lines.append(f"endpoint: {p['id']} sends {_endpoint_text(p)}")
    seen: set[tuple[str, str]] = set()
    for s in stages:
        body = s.get("body")
        if not body:
            continue
        shown = ", ".join(f"{k}: {json.dumps(v)}" for k, v in body.items())
        key = (s["provider"], shown)
        if key not in seen:
            seen.add(key)
            lines.append(f"body: {s['stage']}/{s['provider']} adds {{{shown}}}")
    return lines


def _endpoint_text(p: dict[str, Any]) -> str:
    kind = p["endpoint"]
    if kind == "embeddings":
        per = p.get("inputs_per_request")
        batch = f"{per} inputs a request" if per else "the prompt's texts as one batch"
        return f"/embeddings ({batch}; no stream: e2e and inputs/s, no TTFT)"
    path = "/chat/completions" if kind == "chat" else "/completions (the prompt's texts)"
    if p["stream"]:
        return f"{path}, streamed"
    return f"{path}, not streamed (stream: false: e2e and usage, no TTFT/ITL/TPOT)"


def _regression_text(block: dict[str, object]) -> str:
    thresholds = block["thresholds"]
    assert isinstance(thresholds, dict)
    named = ", ".join(f"{label} {text}" for label, text in thresholds.items())
    baseline = block["baseline"] or "--baseline (none in the scenario)"
    return (
        f"regression: against {baseline}; thresholds {named or 'none named'} "
        "(the rest: lens compare's defaults)"
    )


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


def _duration_cell(s: dict[str, Any]) -> str:
    """What the unit should take, else at most what its timeouts allow, else ``-``."""
    if s["expected_duration_s"] is not None:
        return _seconds(s["expected_duration_s"])
    if s.get("max_duration_s") is not None:
        return f"<= {_seconds(s['max_duration_s'])}"
    return "-"


def _total_duration_text(doc: dict[str, Any]) -> str:
    total, bound = doc["expected_duration_s"], doc.get("max_duration_s")
    text = f"expected duration: {'?' if total is None else _seconds(total)}"
    if bound is not None and (total is None or bound > total):
        text += f", at most {_seconds(bound)} (every request to its timeout)"
    if doc.get("durations_exclude_run_time_steps"):
        text += "; plus the steps adaptive sweeps choose at run time"
    return text


def _duration_bases(stages: list[dict[str, Any]]) -> list[str]:
    """Each assumption behind the expected column once, with the units it applies to (a
    sweep's steps by the sweep's id)."""
    units: dict[str, list[str]] = {}
    for s in stages:
        basis = s.get("duration_basis")
        if basis is None:
            continue
        step, rep = s.get("sweep"), s.get("repetition")
        name = f"{step['id']} steps" if step is not None else s["stage"]
        if rep is not None:
            name = f"{rep['stage']}#1-{rep['count']}"
        names = units.setdefault(basis, [])
        if f"{name}/{s['provider']}" not in names:
            names.append(f"{name}/{s['provider']}")
    if not units:
        return []
    return ["expected durations (else '<=': at most, every request to its timeout):"] + [
        f"  {', '.join(names)}: {basis}" for basis, names in units.items()
    ]


def _repetitions_text(stages: list[dict[str, Any]]) -> list[str]:
    """One line per repeated stage: how often, in which order, and what results keep."""
    counts: dict[str, int] = {}
    for s in stages:
        rep = s.get("repetition")
        if rep is not None:
            counts[rep["stage"]] = rep["count"]
    return [
        f"repeat: {stage} runs {n} times, interleaved across providers (each provider's "
        f"{stage}#1, then each one's {stage}#2 ...); pooled as {stage}, judged pooled"
        for stage, n in counts.items()
    ]


def _estimate_text(estimate: dict[str, Any], providers: list[dict[str, Any]]) -> list[str]:
    """The cost bound, what it assumes, and what the budget will do with it."""
    lines = []
    kinds = {(p.get("price") or {}).get("kind") for p in providers}
    assumed = []
    if "tokens" in kinds:
        assumed.append("every request at its output limit")
    if "gpu-hour" in kinds:
        assumed.append(
            "GPU time with every request at its timeout, pauses and connection set-up included"
        )
    total = estimate["total_usd"]
    unbounded = [u for u in estimate["units"] if not u["bounded"]]
    if unbounded:
        lines.append(
            "estimated cost: unbounded: "
            + "; ".join(f"{u['stage']}/{u['provider']}: {u['basis']}" for u in unbounded)
        )
    elif total is not None:
        scope = []
        if estimate["unpriced"]:
            scope.append(" for the priced stages")
        if estimate["runtime_steps"]:
            scope.append(" for the listed steps (adaptive sweeps add steps at run time)")
        lines.append(f"estimated cost: at most {usd(total)}{''.join(scope)} ({'; '.join(assumed)})")
    if estimate.get("expected_gpu_usd") is not None:
        lines.append(
            f"expected GPU-hour cost: about {usd(estimate['expected_gpu_usd'])} at the expected "
            "durations"
        )
    budget = estimate["budget_usd"]
    if budget is None:
        return lines
    text = f"budget: {usd(budget)}, a hard bound: no request, wait or stage starts that could "
    text += "overspend it"
    first = estimate.get("first_request_usd")
    if first is not None and Decimal(first) > Decimal(budget):
        text += (
            f"; the first request's worst case ({usd(first)}) is above it: the run would "
            "send nothing"
        )
    elif estimate.get("budget_fits"):
        text += "; the whole plan fits within it"
    else:
        text += "; the run may stop early to stay within it"
    lines.append(text)
    return lines


def size_text(size: int) -> str:
    """Bytes for people: ``1MiB``, ``64MiB``, ``1500B``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def _config_text(doc: dict[str, Any]) -> list[str]:
    """What the scenario takes from outside, and the caps it sets: one line each."""
    lines = []
    reads = doc["environment"]
    if reads:
        fields: dict[str, list[str]] = {}
        for read in reads:
            where = read["field"] + (" (default)" if read["default"] else "")
            fields.setdefault(read["variable"], []).append(where)
        lines.append(
            "environment: "
            + "; ".join(f"{name} -> {', '.join(where)}" for name, where in fields.items())
        )
    else:
        lines.append("environment: none read")
    for provider in doc["providers"]:
        headers = provider.get("headers")
        if headers:
            shown = ", ".join(f"{name}: {value}" for name, value in headers.items())
            lines.append(f"headers of {provider['id']}: {shown}")
    for provider in doc["providers"]:
        scraped = provider.get("server_metrics")
        if scraped:
            names = scraped["names"]
            lines.append(
                f"server metrics of {provider['id']}: {scraped['url']} every "
                f"{scraped['every_s']:g}s (timeout {scraped['timeout_s']:g}s), families: "
                + (names if isinstance(names, str) else ", ".join(names))
            )
    limits = doc["limits"]
    lines.append(
        f"limits: events up to {size_text(limits['max_event_bytes'])}, responses up to "
        f"{size_text(limits['max_response_bytes'])}"
    )
    return lines


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
    if sweep["kind"] == "find_max_concurrency":
        precision = sweep["precision"]
        bounds = ["down to neighbours" if precision == 1 else f"precision {precision}"]
        bounds += [f"at most {sweep['max_steps']} steps"] if "max_steps" in sweep else []
        return (
            f"sweep {sweep['id']}: searches {sweep['concurrency_from']}-"
            f"{sweep['concurrency_to']} in flight for the highest concurrency meeting "
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


def _sla_text(sla: dict[str, Any]) -> str:
    text = str(sla["assert"])
    if sla.get("window_s") is not None:
        text += f" per {sla['window_s']:g}s window (allow {sla.get('allow', 0)})"
    return text + (" [stop_on_fail]" if sla.get("stop_on_fail") else "")
