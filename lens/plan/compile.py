"""``Scenario`` -> ``Plan``: resolve defaults, references and secrets; schedule arrivals.

A pure function of the scenario and of the environment (default credentials, the Bedrock
region): it reads no file and sends nothing, so ``lens plan`` can show exactly what ``lens
run`` would do.  Every reference that does not resolve becomes a positioned ``Problem``; all
of them are raised together as one ``PlanError``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from lens.errors import PlanError, Problem
from lens.plan.arrivals import RateProfile, burst_arrivals, paced_arrivals
from lens.plan.model import (
    DEFAULT_RESULTS_RECORDS,
    GIT_BASELINE_PREFIX,
    AdaptiveSweep,
    AnthropicSettings,
    ArrivalSchedule,
    AzureSettings,
    BedrockSettings,
    ClosedLoop,
    EndpointSpec,
    EnvRead,
    ExportSpec,
    IdleProbe,
    IntegritySettings,
    Limits,
    Load,
    Message,
    OpenAISettings,
    OpenLoop,
    Plan,
    PluginSettings,
    PromptSource,
    PromptSpec,
    ProviderSettings,
    ProviderSpec,
    RateStepLoad,
    RegressionSpec,
    RetryPolicy,
    Secret,
    ServerMetricsSpec,
    SimSettings,
    SlaSpec,
    StagePlan,
    SweepKind,
    TokenizerPreflight,
)
from lens.plan.network import network_warnings, with_network
from lens.plan.phases import with_phases
from lens.plan.prices import resolve_prices
from lens.plan.trace import TraceReplay
from lens.plan.workloads import (
    conversation_detail,
    conversation_prompt,
    dataset_detail,
    dataset_prompts,
    deep_merge,
    source_of,
    synthetic_detail,
    synthetic_prompts,
)
from lens.pricing import ModelPrice, ProviderPrice
from lens.records import Repetition, SweepStep, repetition_id
from lens.scenario.checks import duplicate_problems
from lens.scenario.headers import unsendable
from lens.scenario.model import (
    MAX_REPEAT,
    PROVIDER_TYPE_ALIASES,
    REGION_PATTERN,
    AnthropicProvider,
    AnyProvider,
    AzureOpenAIProvider,
    BedrockProvider,
    BurstStage,
    ConcurrencyRange,
    ConcurrencyStage,
    ConstantRateStage,
    ConversationPrompt,
    DatasetPrompt,
    FilePrompt,
    GeminiProvider,
    HostedProvider,
    IdleProbeStage,
    MessagesPrompt,
    OpenAICompatibleProvider,
    OpenAIEndpoint,
    OpenAIProvider,
    OpenAIResponsesProvider,
    PluginProviderSettings,
    RampStage,
    RateRange,
    Retries,
    Scenario,
    SecretHeader,
    SimulatedProvider,
    Stage,
    SweepStage,
    SyntheticPrompt,
    TokenizerRef,
    TraceStage,
)
from lens.scenario.server_tokenizer import ServerEstimate, ServerTokenizer
from lens.scenario.sla import parse_sla
from lens.scenario.thresholds import parse_threshold
from lens.scenario.tokenizers import ESTIMATE, Tokenizer, TokenizerError
from lens.scenario.units import show
from lens.scenario.yaml_nodes import PathT, SourceMap, format_path
from lens.suggest import did_you_mean
from lens.targets import parse_target

OPENAI_KEY_VARIABLE = "OPENAI_API_KEY"
# Where a provider's credential comes from when the scenario gives no api_key: the first of
# these variables that is set and not empty.
KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": (OPENAI_KEY_VARIABLE,),
    "openai-responses": (OPENAI_KEY_VARIABLE,),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "azure-openai": ("AZURE_OPENAI_API_KEY",),
    "bedrock": ("AWS_BEARER_TOKEN_BEDROCK",),
}
ENTRA_ID_VARIABLE = "AZURE_OPENAI_AD_TOKEN"  # with auth: entra
# Without a credential these still work: a local server, or Bedrock's AWS credential chain.
OPTIONAL_KEY_TYPES = frozenset({"openai-compatible", "bedrock"})
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
# A stage's prompt cycle is made long enough for every line of its prompt files to come up,
# but no longer than this; past it, long files restart from their first line.
MAX_CYCLE = 100_000
# pacing: precise wakes this early before each arrival: one epoll timeout's rounding.
PRECISE_SPIN_S = 0.0015


def compile_plan(
    scenario: Scenario,
    *,
    source: str = "",
    env: Mapping[str, str] | None = None,
    repeat: int | None = None,
) -> Plan:
    """Compile a validated scenario; ``source`` defaults to the file it was loaded from and
    ``env`` (default credentials such as ``OPENAI_API_KEY``, ``AWS_REGION``) to
    ``os.environ``.  ``repeat`` (``lens run --repeat N``) replaces ``defaults.repeat``: it
    repeats every stage that can repeat and does not set its own ``repeat``."""
    if repeat is not None and not (1 <= repeat <= MAX_REPEAT):
        raise PlanError(
            [Problem(f"--repeat takes a whole number from 1 to {MAX_REPEAT}, not {repeat}")]
        )
    ctx = _Context(scenario.source_map, os.environ if env is None else env, [], repeat=repeat)
    ctx.scenario_tokenizer = scenario.tokenizer
    ctx.tokenizer_for = scenario.tokenizer_for
    ctx.problems += duplicate_problems(scenario)
    providers = {
        pid: with_network(
            _provider(pid, spec, ctx),
            pid,
            spec,
            env=ctx.env,
            source_file=ctx.source.file,
            problem=ctx.problem,
        )
        for pid, spec in scenario.providers.items()
    }
    prompts, groups, sources = _prompts(scenario, ctx)
    stages = tuple(
        plan
        for i, stage in enumerate(scenario.load)
        for plan in _stage(scenario, i, stage, groups, ctx)
    )
    _step_id_problems(scenario, ctx)
    slas = _slas(scenario, ctx)
    sweeps = tuple(
        sweep
        for i, stage in enumerate(scenario.load)
        if isinstance(stage, SweepStage) and (sweep := _adaptive(stage, i, ctx)) is not None
    )
    warnings: list[str] = _literal_variable_warnings(scenario) + ctx.notes
    warnings += network_warnings(list(providers.values()))
    prices = resolve_prices(
        scenario, {pid: p.model for pid, p in providers.items()}, ctx.problem, warnings
    )
    warnings += _exact_without_limit(stages, providers, prompts)
    warnings += _bodies_not_sent(stages, providers, prompts)
    warnings += _conversations(scenario, stages, providers, prompts, ctx)
    if scenario.budget is not None:
        _budget_needs_bounds(stages, providers, prices, prompts, ctx)
    if ctx.problems:
        raise PlanError(ctx.problems)
    limits = Limits(
        max_event_bytes=scenario.limits.max_event_bytes,
        max_response_bytes=scenario.limits.max_response_bytes,
    )
    providers = {pid: replace(p, price=prices[pid], limits=limits) for pid, p in providers.items()}
    return Plan(
        name=scenario.name,
        description=scenario.description,
        source=source or scenario.source_map.file,
        providers=providers,
        prompts=prompts,
        stages=stages,
        slas=slas,
        scenario_version=scenario.version,
        budget_usd=scenario.budget,
        warnings=tuple(warnings),
        integrity=IntegritySettings(
            max_loop_lag_ms=scenario.integrity.max_loop_lag * 1e3,
            max_cpu=scenario.integrity.max_cpu,
            cold_after_s=scenario.integrity.cold_after,
            buffered_share=scenario.integrity.buffered_share,
        ),
        exports=_exports(scenario),
        sweeps=sweeps,
        limits=limits,
        environment=_environment(scenario.source_map, ctx.reads),
        regression=_regression(scenario),
        results_records=DEFAULT_RESULTS_RECORDS
        if scenario.results.records is None
        else records_kept(scenario.results.records),
        results_records_default=scenario.results.records is None,
        workers=scenario.defaults.workers,
        prompt_sources=sources,
        tokenizer=scenario.tokenizer_for().name,
        tokenizer_preflight=_tokenizer_preflight(scenario.tokenizer_for()),
    )


def _tokenizer_preflight(tokenizer: Tokenizer) -> TokenizerPreflight | None:
    """tokenizer: server: the calls its pre-flight will make (lens plan), or the live
    tokenizer's (lens run fills in the calls made once the pre-flight ends)."""
    if isinstance(tokenizer, ServerEstimate):
        target = tokenizer.target
        return TokenizerPreflight(
            (tokenizer.name.split(" ")[0],), (target.origin,), tokenizer.planned_calls()
        )
    if isinstance(tokenizer, ServerTokenizer):
        return TokenizerPreflight((tokenizer.name,), (tokenizer.target.origin,))
    return None


def records_kept(value: str | int) -> int | None:
    """``results: {records: ...}`` (or ``--results-records``) as the plan keeps it: None for
    all, 0 for none, else N."""
    if value == "all":
        return None
    return 0 if value == "none" else int(value)


@dataclass(slots=True)
class _Context:
    source: SourceMap
    env: Mapping[str, str]
    problems: list[Problem]
    reads: list[EnvRead] = field(default_factory=list)  # lens's own defaults read
    repeat: int | None = None  # --repeat: replaces defaults.repeat
    repeats: dict[str, int] = field(default_factory=dict)  # stage id -> its repetitions
    notes: list[str] = field(default_factory=list)  # plan warnings found while compiling
    scenario_tokenizer: TokenizerRef | None = None  # the scenario's tokenizer: as written
    tokenizer_for: Callable[[str | None], Tokenizer] = lambda _pid: ESTIMATE

    def problem(self, message: str, path: PathT, *, key: bool = False) -> None:
        pos = self.source.key_pos(path) if key else self.source.value_pos(path)
        self.problems.append(Problem(message, pos=pos, path=format_path(path)))


# --- providers -----------------------------------------------------------------------------


def _environment(source: SourceMap, defaults: list[EnvRead]) -> tuple[EnvRead, ...]:
    """Every variable the plan was built from: the scenario's ``${VAR}`` in file order, then
    the defaults lens read for fields the scenario left out."""

    def order(path: PathT) -> tuple[int, int]:
        pos = source.value_pos(path)
        return (pos.line, pos.col) if pos is not None else (0, 0)

    written = [
        EnvRead(name, format_path(path))
        for path in sorted(source.variables, key=order)
        for name in dict.fromkeys(source.variables[path])
    ]
    return (*written, *defaults)


def _provider(pid: str, spec: AnyProvider, ctx: _Context) -> ProviderSpec:
    if isinstance(spec, SimulatedProvider):
        sim = SimSettings(
            ttft_s=spec.ttft,
            itl_s=spec.itl,
            output_tokens=spec.output_tokens,
            jitter=spec.jitter,
            error_429=spec.errors.rate_429,
            error_500=spec.errors.rate_500,
            cut_stream=spec.errors.cut_stream,
            seed=spec.seed,
            protocol=spec.protocol,
            capacity=spec.capacity,
            engine_timings=spec.engine_timings,
        )
        return ProviderSpec(
            id=pid,
            type="simulated",
            model=spec.model,
            base_url=None,
            settings=sim,
            server_metrics=_server_metrics(spec),
            endpoint=_endpoint(spec),
        )
    key = _api_key(pid, spec, ctx)
    headers = tuple(
        (name, value.value if isinstance(value, SecretHeader) else value)
        for name, value in spec.headers.items()
    )
    if isinstance(spec, AzureOpenAIProvider):
        model = spec.deployment if spec.model is None else spec.model
        base_url = spec.url
    elif isinstance(spec, BedrockProvider):
        model, base_url = spec.model, spec.url  # None: the region's bedrock-runtime endpoint
    else:
        model, base_url = spec.model, spec.base_url
    return ProviderSpec(
        id=pid,
        type=spec.type,
        model=model,
        base_url=base_url,
        api_key=key,
        headers=headers,
        secret_headers=frozenset(
            name.lower()
            for name, value in spec.headers.items()
            if isinstance(value, SecretHeader) and value.secret
        ),
        settings=_settings(pid, spec, ctx),
        tokenizer=_response_tokenizer(pid, spec, ctx),
        server_metrics=_server_metrics(spec),
        endpoint=_endpoint(spec),
    )


def _server_metrics(spec: AnyProvider) -> ServerMetricsSpec | None:
    given = spec.server_metrics
    if given is None:
        return None
    return ServerMetricsSpec(
        url=given.url, every_s=given.every, timeout_s=given.timeout_s, names=given.names
    )


def _endpoint(spec: AnyProvider) -> EndpointSpec:
    """The OpenAI API and streaming a provider's requests use (the default for a type
    without the fields: the scenario model has refused them there)."""
    if not isinstance(spec, OpenAIEndpoint):
        return EndpointSpec()
    return EndpointSpec(spec.endpoint, spec.stream, spec.inputs_per_request)


def _response_tokenizer(pid: str, spec: HostedProvider, ctx: _Context) -> Tokenizer | None:
    """What counts this provider's output tokens when its server reports no usage: its own
    ``tokenizer:``, else the scenario's; None (lens's estimate) when neither names one."""
    if not isinstance(spec, OpenAICompatibleProvider | OpenAIProvider | AzureOpenAIProvider):
        return None
    if spec.tokenizer is None and ctx.scenario_tokenizer is None:
        return None
    tokenizer = ctx.tokenizer_for(pid)
    # A server tokenizer never counts during a run (lens sends nothing of its own then).
    if tokenizer is ESTIMATE or isinstance(tokenizer, ServerEstimate | ServerTokenizer):
        return None
    return tokenizer


def _settings(pid: str, spec: HostedProvider, ctx: _Context) -> ProviderSettings:
    """What the provider's type needs beyond the common fields."""
    if isinstance(spec, PluginProviderSettings):
        # A plugin's type: its own settings model (frozen), for its adapter to read.
        return PluginSettings(spec)
    if isinstance(spec, OpenAICompatibleProvider):
        exact = spec.output_tokens == "exact"
        return OpenAISettings(spec.max_tokens_field, spec.include_usage, exact_output=exact)
    if isinstance(spec, OpenAIProvider):
        return OpenAISettings(spec.max_tokens_field, spec.include_usage)
    if isinstance(spec, AnthropicProvider):
        return AnthropicSettings(spec.anthropic_version)
    if isinstance(spec, BedrockProvider):
        return BedrockSettings(_bedrock_region(pid, spec, ctx), spec.profile, spec.api)
    if isinstance(spec, AzureOpenAIProvider):
        return AzureSettings(
            deployment=spec.deployment,
            api_version=spec.api_version,
            auth=spec.auth,
            max_tokens_field=spec.max_tokens_field,
            include_usage=spec.include_usage,
        )
    assert isinstance(spec, OpenAIResponsesProvider | GeminiProvider)
    return None


def _api_key(pid: str, spec: HostedProvider, ctx: _Context) -> Secret | None:
    """The provider's credential as a ``Secret`` whose source names variables, never the value.

    Written ``api_key``: used as given; empty means "send none" where a credential is
    optional (openai-compatible, bedrock) and is an error elsewhere.  Not written: the first
    non-empty variable of ``KEY_VARIABLES`` (``AZURE_OPENAI_AD_TOKEN`` for Azure with
    ``auth: entra``), required for every declared provider of a type that needs one.
    """
    path: PathT = ("providers", pid, "api_key")
    entra = isinstance(spec, AzureOpenAIProvider) and spec.auth == "entra"
    variables = (ENTRA_ID_VARIABLE,) if entra else KEY_VARIABLES.get(spec.type, ())
    required = spec.type not in OPTIONAL_KEY_TYPES
    if isinstance(spec, PluginProviderSettings):
        variables, required = spec.api_key_variables, spec.api_key_required
    if spec.api_key is not None:
        value = spec.api_key.get_secret_value()
        names = ctx.source.env_variables(path)
        origin = " ".join(f"${{{name}}}" for name in names) if names else "inline"
        if value:
            return Secret(value, source=origin)
        if required:
            ctx.problem(f"{spec.type} provider {pid!r} has an empty api_key (from {origin})", path)
        return None
    for name in variables:
        value = ctx.env.get(name, "")
        if value:
            ctx.reads.append(EnvRead(name, format_path(path), default=True))
            why = unsendable(value)
            if why is not None:  # the value is never shown: it is a credential
                ctx.problem(
                    f"{spec.type} provider {pid!r} takes its api key from {name}, which {why}: "
                    "it could not be sent in an HTTP header",
                    ("providers", pid),
                    key=True,
                )
                return None
            return Secret(value, source=f"${{{name}}}")
    if not required:
        return None
    if entra:
        ctx.problem(
            f"azure-openai provider {pid!r} uses auth: entra but has no token: set "
            f"{ENTRA_ID_VARIABLE} to a Microsoft Entra ID access token, or give api_key:",
            ("providers", pid, "auth"),
        )
    else:
        ctx.problem(
            f"{spec.type} provider {pid!r} has no api key: set {' or '.join(variables)}, "
            "or give api_key:",
            ("providers", pid),
            key=True,
        )
    return None


def _bedrock_region(pid: str, spec: BedrockProvider, ctx: _Context) -> str | None:
    """``region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``; needed unless an
    endpoint is given.  Only the shape is checked here: the adapter knows the regions."""
    if spec.region is not None:
        return spec.region
    for name in REGION_VARIABLES:
        value = ctx.env.get(name, "")
        if not value:
            continue
        ctx.reads.append(EnvRead(name, format_path(("providers", pid, "region")), default=True))
        if re.fullmatch(REGION_PATTERN, value):
            return value
        ctx.problem(
            f"bedrock provider {pid!r} takes its region from {name}, but {show(value)} is "
            "not an AWS region name such as us-east-1: fix the variable, or give region:",
            ("providers", pid),
            key=True,
        )
        return None
    if spec.url is None:
        ctx.problem(
            f"bedrock provider {pid!r} has no region: give region: (e.g. us-east-1), set "
            "AWS_REGION or AWS_DEFAULT_REGION, or give endpoint:",
            ("providers", pid),
            key=True,
        )
    return None


# --- prompts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptGroup:
    """A prompt as listed in the scenario: its weight and the plan prompt ids it stands for
    (one, or one per line of a JSONL file)."""

    weight: int
    ids: tuple[str, ...]


def _prompts(
    scenario: Scenario, ctx: _Context
) -> tuple[dict[str, PromptSpec], dict[str, PromptGroup], tuple[PromptSource, ...]]:
    specs: dict[str, PromptSpec] = {}
    groups: dict[str, PromptGroup] = {}
    sources: list[PromptSource] = []
    tokenizer = scenario.tokenizer_for()
    for i, prompt in enumerate(scenario.prompts):
        weight = float(prompt.weight)
        body = dict(prompt.body)
        detail = ""
        if isinstance(prompt, MessagesPrompt):
            messages = tuple(Message(m.role, m.content) for m in prompt.messages)
            expanded = [
                PromptSpec(prompt.id, messages, prompt.max_tokens, weight, "inline", body=body)
            ]
        elif isinstance(prompt, SyntheticPrompt):
            try:
                expanded = synthetic_prompts(prompt, tokenizer)
            except TokenizerError as exc:
                ctx.problem(str(exc), ("prompts", i, "synthetic"))
                expanded = []
            detail = synthetic_detail(prompt.synthetic)
        elif isinstance(prompt, DatasetPrompt):
            expanded = dataset_prompts(prompt)
            detail = dataset_detail(prompt)
            sessions = conversation_detail(expanded)
            detail = f"{detail}; {sessions}" if sessions else detail
        elif isinstance(prompt, ConversationPrompt):
            expanded = [conversation_prompt(prompt)]
            detail = conversation_detail(expanded)
        else:
            assert isinstance(prompt, FilePrompt)
            expanded = [
                PromptSpec(
                    f"{prompt.id}#{req.line}",
                    tuple(Message(m.role, m.content) for m in req.messages),
                    req.max_tokens,
                    weight,
                    f"{prompt.file}:{req.line}",
                    body=body,
                )
                for req in prompt.requests
            ]
            detail = prompt.file
        kind = next(
            k
            for k in ("messages", "synthetic", "file", "dataset", "conversation")
            if hasattr(prompt, k)
        )
        if expanded:
            if any(spec.input_tokens is None for spec in expanded):
                expanded = _with_counts(expanded, tokenizer)
            sources.append(source_of(prompt.id, kind, expanded, tokenizer, detail))
        specs.update((spec.id, spec) for spec in expanded)
        groups[prompt.id] = PromptGroup(prompt.weight, tuple(spec.id for spec in expanded))
    return specs, groups, tuple(sources)


def _with_counts(specs: list[PromptSpec], tokenizer: Tokenizer) -> list[PromptSpec]:
    texts = [m.content for s in specs for m in s.messages]
    counts = iter(tokenizer.count_many(texts))
    return [replace(s, input_tokens=sum(next(counts) for _ in s.messages)) for s in specs]


def _literal_variable_warnings(scenario: Scenario) -> list[str]:
    """Prompts that look as if they meant to read the environment: ``${...}`` is sent as
    written unless the scenario says ``allow_env_in_prompts: true``."""
    if scenario.allow_env_in_prompts:
        return []
    found = []
    for i, prompt in enumerate(scenario.prompts):
        if isinstance(prompt, MessagesPrompt):
            hits = [
                ("prompts", i, "messages", j, "content")
                for j, m in enumerate(prompt.messages)
                if "${" in m.content
            ]
            where = [str(scenario.source_map.value_pos(path) or format_path(path)) for path in hits]
        elif isinstance(prompt, FilePrompt):
            lines = [r.line for r in prompt.requests if any("${" in m.content for m in r.messages)]
            where = [f"{prompt.file}:{line}" for line in lines]
        else:
            continue
        if where:
            shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
            found.append(
                f"prompt {prompt.id!r} contains '${{' ({shown}): sent as written; prompts read "
                "environment variables only with allow_env_in_prompts: true"
            )
    return found


def smooth_weighted_round_robin(weights: Sequence[tuple[str, int]]) -> tuple[str, ...]:
    """One cycle of nginx's smooth weighted round-robin: ``a:2, b:1`` -> ``a b a``.

    Each turn every item gains its weight, the richest (first on ties) is picked and pays
    the total.  Picks of one item are spread evenly instead of bunched, so a short run sees
    the intended mix.  Weights are divided by their gcd first: the shortest exact cycle.
    """
    if not weights:
        return ()
    divisor = math.gcd(*(w for _, w in weights))
    names = [name for name, _ in weights]
    reduced = [w // divisor for _, w in weights]
    total = sum(reduced)
    current = [0] * len(reduced)
    cycle: list[str] = []
    for _ in range(total):
        for i, w in enumerate(reduced):
            current[i] += w
        best = max(range(len(current)), key=current.__getitem__)
        current[best] -= total
        cycle.append(names[best])
    return tuple(cycle)


def prompt_cycle(groups: Sequence[PromptGroup]) -> tuple[str, ...]:
    """The stage's prompt sequence: weights pick a listed prompt, then a file's lines take
    turns within its slot, so a file's weight is its share however many lines it has.

    The weighted cycle repeats until every file has wrapped around exactly (or, when that
    would exceed ``MAX_CYCLE``, until each line came up at least once).
    """
    slots = smooth_weighted_round_robin([(str(i), g.weight) for i, g in enumerate(groups)])
    uses = {i: slots.count(str(i)) for i in range(len(groups))}
    repeats = 1
    for i, group in enumerate(groups):
        repeats = math.lcm(repeats, len(group.ids) // math.gcd(len(group.ids), uses[i]))
    if repeats * len(slots) > MAX_CYCLE:
        repeats = max(math.ceil(len(g.ids) / uses[i]) for i, g in enumerate(groups))
    turn = [0] * len(groups)
    sequence: list[str] = []
    for _ in range(repeats):
        for slot in slots:
            i = int(slot)
            group = groups[i]
            sequence.append(group.ids[turn[i] % len(group.ids)])
            turn[i] += 1
    return tuple(sequence)


# --- stages --------------------------------------------------------------------------------


def _unknown(kind: str, name: str, known: Sequence[str]) -> str:
    listing = ", ".join(repr(k) for k in known)
    hint = did_you_mean(name, known, PROVIDER_TYPE_ALIASES)
    return f"unknown {kind} {name!r}{hint}; known {kind}s: {listing}"


def _stage(
    scenario: Scenario, index: int, stage: Stage, groups: Mapping[str, PromptGroup], ctx: _Context
) -> list[StagePlan]:
    here: PathT = ("load", index)
    provider_ids = list(scenario.providers)
    for j, pid in enumerate(stage.providers or ()):
        if pid not in scenario.providers:
            ctx.problem(_unknown("provider", pid, provider_ids), (*here, "providers", j))
    for j, name in enumerate(stage.prompts or ()):
        if name not in groups:
            ctx.problem(_unknown("prompt", name, list(groups)), (*here, "prompts", j))
    chosen = [groups[p] for p in (stage.prompts or groups) if p in groups]
    if any(not g.ids for g in chosen):  # only a scenario built in code, with no file lines
        ctx.problem("a prompt file of this stage has no requests", here)
        return []
    defaults = scenario.defaults
    cycle = prompt_cycle(chosen) if not isinstance(stage, TraceStage) else ()
    trace = _trace(scenario, stage, index, ctx) if isinstance(stage, TraceStage) else None
    if isinstance(stage, TraceStage) and trace is None:
        return []
    timeout = defaults.timeout if stage.timeout is None else stage.timeout
    max_tokens = defaults.max_tokens if stage.max_tokens is None else stage.max_tokens
    if isinstance(stage, TraceStage):
        max_tokens = None  # each row sends its own output length
    retries = _retry_policy(stage.retries or defaults.retries)
    spin = PRECISE_SPIN_S if defaults.pacing == "precise" else 0.0
    steps: list[tuple[str, SweepStep | None]] = [(stage.id, None)]
    pause = 0.0
    if isinstance(stage, SweepStage):
        steps, pause = list(sweep_steps(stage)), stage.pause
    pids = [pid for pid in stage.providers or provider_ids if pid in scenario.providers]
    provider_bodies = {
        pid: dict(getattr(scenario.providers[pid], "body", None) or {}) for pid in pids
    }
    # Step order, then provider order (as the stage lists them, else as the scenario does);
    # a sweep's pause comes before each step after the first.  One load a step: every
    # provider of it faces the very same schedule.
    units = _repetitions(
        stage,
        defaults.repeat,
        ctx,
        [
            StagePlan(
                stage=stage_id,
                provider=pid,
                pattern=stage.pattern,
                prompts=cycle,
                timeout_s=timeout,
                max_tokens=max_tokens,
                load=load,
                retries=retries,
                sweep=step,
                pause_before_s=pause if step and step.index and not k else 0.0,
                spin_s=spin,
                body=deep_merge(provider_bodies.get(pid, {}), stage.body),
                trace=trace,
            )
            for stage_id, step in steps
            for load in (_load(stage, stage_id, step, trace),)
            for k, pid in enumerate(pids)
        ],
    )
    if isinstance(stage, IdleProbeStage):
        return units
    seen: set[str] = set()

    def problem(message: str, key: str) -> None:
        # Every unit of a stage resolves the same keys: say each thing once.
        if message in seen:
            return
        seen.add(message)
        if key in stage.model_fields_set:
            ctx.problem(message, (*here, key))
        elif key in defaults.model_fields_set:
            ctx.problem(message, ("defaults", key))
        else:
            ctx.problem(message, (*here, "pattern"))

    return [with_phases(stage, defaults, unit, problem) for unit in units]


def _repetitions(
    stage: Stage, default: int, ctx: _Context, units: list[StagePlan]
) -> list[StagePlan]:
    """The units of ``stage`` run ``repeat`` times, repetition by repetition (every
    provider's first, then every provider's second ...): drift over the run (a server
    warming up, a neighbour's load) then hits every provider alike.  Each repetition is the
    stage's units as planned, its very schedule from its own start, under the id
    ``<stage>#<k>``; the stage's own id is left for the pooled summary.

    The scenario refuses ``repeat`` on sweeps and idle probes; ``defaults.repeat`` and
    ``--repeat`` pass them by, with a warning."""
    count = stage.repeat
    if count is None:
        inherited = ctx.repeat if ctx.repeat is not None else default
        repeatable = not isinstance(stage, SweepStage | IdleProbeStage)
        if inherited > 1 and not repeatable:
            origin = "--repeat" if ctx.repeat is not None else "defaults.repeat"
            ctx.notes.append(
                f"stage {stage.id!r} ({stage.pattern}) runs once: {origin} {inherited} does "
                "not apply to sweeps or idle probes"
            )
        count = inherited if repeatable else 1
    if count == 1:
        return units
    ctx.repeats[stage.id] = count
    return [
        replace(
            unit,
            stage=repetition_id(stage.id, k),
            repetition=Repetition(stage.id, k, count),
        )
        for k in range(1, count + 1)
        for unit in units
    ]


def step_id(sweep: str, *, rate: float | None = None, concurrency: int | None = None) -> str:
    """``<id>.<rate>rps`` for a rate (``ladder.2rps``, ``ladder.0.5rps``), ``<id>.c<n>`` for a
    concurrency (``ladder.c16``): ids that SLA scopes, results and file names take as they
    are."""
    return f"{sweep}.c{concurrency}" if rate is None else f"{sweep}.{rate:g}rps"


def sweep_steps(stage: SweepStage) -> list[tuple[str, SweepStep]]:
    """The stage id and sweep position of each step known before the run: every listed rate
    or concurrency; the two bounds of a search (``rates: {from, to}``, ``concurrencies:
    {from, to}``); the synchronous and saturation steps of ``auto``.  The steps of the last
    two are decided at run time."""
    if isinstance(stage.concurrencies, ConcurrencyRange):
        ends = (stage.concurrencies.from_, stage.concurrencies.to)
        return [
            (step_id(stage.id, concurrency=c), SweepStep(stage.id, i, None, concurrency=c))
            for i, c in enumerate(ends)
        ]
    if isinstance(stage.rates, RateRange):
        bounds = (stage.rates.from_, stage.rates.to)
        return [
            (step_id(stage.id, rate=r), SweepStep(stage.id, i, None, rate_per_s=r))
            for i, r in enumerate(bounds)
        ]
    if stage.auto is not None:
        closed = (1, stage.auto.saturation)
        return [
            (step_id(stage.id, concurrency=c), SweepStep(stage.id, i, None, concurrency=c))
            for i, c in enumerate(closed)
        ]
    if stage.rates is not None:
        n = len(stage.rates)
        return [
            (step_id(stage.id, rate=rate), SweepStep(stage.id, i, n, rate_per_s=rate))
            for i, rate in enumerate(stage.rates)
        ]
    assert stage.concurrencies is not None
    n = len(stage.concurrencies)
    return [
        (step_id(stage.id, concurrency=c), SweepStep(stage.id, i, n, concurrency=c))
        for i, c in enumerate(stage.concurrencies)
    ]


def _trace(scenario: Scenario, stage: TraceStage, index: int, ctx: _Context) -> TraceReplay | None:
    """The replay of a trace stage (None: its file was not read, a problem said why)."""
    table = stage.table
    if table is None:  # a scenario built in code, without loading the file
        ctx.problem(
            f"trace {stage.file} was not read (load the scenario from its file)",
            ("load", index, "file"),
        )
        return None
    return TraceReplay.of(
        stage.id,
        table,
        speedup=stage.speedup,
        block_tokens=stage.block_tokens,
        seed=stage.seed,
        tokenizer=scenario.tokenizer_for(),
    )


def _load(
    stage: Stage, stage_id: str, step: SweepStep | None, trace: TraceReplay | None = None
) -> Load:
    """The load of ``stage`` (of its sweep step ``step``, named ``stage_id``): arrivals
    (open loop), workers (closed loop) or idle gaps (idle probe).

    A random schedule is drawn from the stage's seed and id, not the provider's: every
    provider of a stage faces the very same arrival times, so a comparison between them
    is not also a comparison between two draws of the process.  Stages differ."""
    if isinstance(stage, BurstStage):
        return OpenLoop(burst_arrivals(stage.requests, stage.waves, stage.interval or 0.0))
    if isinstance(stage, RampStage):
        profile = RateProfile.ramp(stage.from_, stage.to, stage.duration, stage.steps)
        arrivals = paced_arrivals(
            profile, requests=None, process=stage.arrival, seed=stage.seed, names=(stage_id,)
        )
        return OpenLoop(arrivals, stage.max_concurrency)
    if isinstance(stage, ConcurrencyStage):
        return ClosedLoop(stage.concurrency, stage.requests, stage.duration)
    if isinstance(stage, IdleProbeStage):
        return IdleProbe(stage.gaps)
    if isinstance(stage, TraceStage):
        assert trace is not None
        return OpenLoop(
            ArrivalSchedule(process="trace", source=trace.offsets()), stage.max_concurrency
        )
    if isinstance(stage, SweepStage):
        assert step is not None
        if step.concurrency is not None:
            return ClosedLoop(step.concurrency, stage.requests, stage.duration)
        assert step.rate_per_s is not None
        return _rate_load(stage_id, step.rate_per_s, _rate_step_load(stage))
    return _rate_load(stage_id, stage.rate, _rate_step_load(stage))


def _rate_step_load(stage: ConstantRateStage | SweepStage) -> RateStepLoad:
    return RateStepLoad(
        duration_s=stage.duration,
        requests=stage.requests,
        process=stage.arrival,
        burstiness=1.0 if stage.burstiness is None else stage.burstiness,
        seed=stage.seed,
        max_concurrency=stage.max_concurrency,
    )


def _rate_load(stage_id: str, rate: float, load: RateStepLoad) -> OpenLoop:
    arrivals = paced_arrivals(
        RateProfile.constant(rate, load.duration_s),
        requests=load.requests,
        process=load.process,
        burstiness=load.burstiness,
        seed=load.seed,
        names=(stage_id,),  # shared by the stage's providers: see _load
    )
    return OpenLoop(arrivals, load.max_concurrency)


def rate_step(
    base: StagePlan, sweep: AdaptiveSweep, rate: float, index: int, *, pause: bool
) -> StagePlan:
    """A step of ``sweep`` at ``rate`` chosen at run time, made from ``base`` (any planned
    unit of the sweep for the same provider) exactly as the compiler makes a listed step;
    ``pause``: the sweep's pause comes first."""
    assert sweep.load is not None
    name = step_id(sweep.sweep, rate=rate)
    return replace(
        base,
        stage=name,
        sweep=SweepStep(sweep.sweep, index, None, rate_per_s=rate),
        pause_before_s=sweep.pause_s if pause else 0.0,
        load=_rate_load(name, rate, sweep.load),
    )


def concurrency_step(
    base: StagePlan, sweep: AdaptiveSweep, concurrency: int, index: int, *, pause: bool
) -> StagePlan:
    """A closed-loop step of ``sweep`` chosen at run time, made from ``base`` (any planned
    unit of the sweep for the same provider: its requests, duration and phases do not
    depend on the concurrency); ``pause``: the sweep's pause comes first."""
    match base.load:
        case ClosedLoop() as load:
            return replace(
                base,
                stage=step_id(sweep.sweep, concurrency=concurrency),
                sweep=SweepStep(sweep.sweep, index, None, concurrency=concurrency),
                load=replace(load, concurrency=concurrency),
                pause_before_s=sweep.pause_s if pause else 0.0,
            )
        case _:
            raise AssertionError(f"concurrency_step: {base.stage!r} is not a closed-loop step")


def _adaptive(stage: SweepStage, index: int, ctx: _Context) -> AdaptiveSweep | None:
    """What the run needs to choose the steps of ``stage`` (None: all are listed)."""
    here: PathT = ("load", index)
    kind: SweepKind
    if stage.search_kind is not None:
        kind = stage.search_kind
    elif stage.auto is not None:
        kind = "auto"
    elif stage.stop_when is not None:
        kind = "stop_when"
    else:
        return None
    texts = stage.find_max_rate or stage.find_max_concurrency or stage.stop_when or ()
    key = stage.search_kind or "stop_when"
    conditions = []
    for j, text in enumerate(texts):
        path: PathT = (*here, key) if len(texts) == 1 else (*here, key, j)
        pos = ctx.source.value_pos(path)
        where = str(pos) if pos is not None else format_path(path)
        conditions.append(SlaSpec(parse_sla(text), where=where))
    search = stage.rates if isinstance(stage.rates, RateRange) else None
    closed = stage.concurrencies if isinstance(stage.concurrencies, ConcurrencyRange) else None
    return AdaptiveSweep(
        sweep=stage.id,
        kind=kind,
        conditions=tuple(conditions),
        load=_rate_step_load(stage),
        pause_s=stage.pause,
        search_range=None if search is None else (search.from_, search.to),
        precision=stage.rate_precision if kind == "find_max_rate" else None,
        max_steps=stage.max_steps,
        concurrency_range=None if closed is None else (closed.from_, closed.to),
        concurrency_precision=stage.precision if isinstance(stage.precision, int) else 1,
        auto_steps=None if stage.auto is None else stage.auto.steps,
    )


# --- SLAs ----------------------------------------------------------------------------------


def _step_id_problems(scenario: Scenario, ctx: _Context) -> None:
    """A sweep step's id must not be another stage's (or step's): results are keyed by it."""
    taken: dict[str, PathT] = {stage.id: ("load", i, "id") for i, stage in enumerate(scenario.load)}
    for i, stage in enumerate(scenario.load):
        if not isinstance(stage, SweepStage):
            continue
        for j, (name, _) in enumerate(sweep_steps(stage)):
            here = _step_path(stage, i, j)
            if name in taken:
                ctx.problem(
                    f"this step of sweep {stage.id!r} is stage {name!r}, an id already "
                    f"taken at {format_path(taken[name])}: rename one of them",
                    here,
                )
            taken.setdefault(name, here)


def _step_path(stage: SweepStage, index: int, j: int) -> PathT:
    """Where step ``j`` of a sweep was written (``auto``: the steps it implies)."""
    if isinstance(stage.rates, RateRange):
        return ("load", index, "rates", ("from", "to")[j])
    if isinstance(stage.concurrencies, ConcurrencyRange):
        return ("load", index, "concurrencies", ("from", "to")[j])
    if stage.auto is not None:
        return ("load", index, "auto")
    return ("load", index, "rates" if stage.rates is not None else "concurrencies", j)


def _slas(scenario: Scenario, ctx: _Context) -> tuple[SlaSpec, ...]:
    # A scope names a stage, a sweep (all its steps) or one step of a sweep.
    stages: dict[str, Stage] = {stage.id: stage for stage in scenario.load}
    steps_of: dict[str, tuple[str, ...]] = {}
    for sweep in scenario.load:
        if isinstance(sweep, SweepStage):
            steps_of[sweep.id] = tuple(name for name, _ in sweep_steps(sweep))
            stages.update(dict.fromkeys(steps_of[sweep.id], sweep))
    specs = []
    for i, entry in enumerate(scenario.sla):
        here: PathT = ("sla", i)
        provider, stage = entry.provider, entry.stage
        if provider is not None and provider not in scenario.providers:
            ctx.problem(
                _unknown("provider", provider, list(scenario.providers)), (*here, "provider")
            )
        if stage is not None and stage not in stages:
            ctx.problem(_unknown("stage", stage, list(stages)), (*here, "stage"))
        elif stage is not None and provider is not None:
            runs = stages[stage].providers
            if runs is not None and provider not in runs:
                ctx.problem(
                    f"stage {stage!r} does not run provider {provider!r} (it runs "
                    f"{', '.join(repr(p) for p in runs)}), so this SLA could never be judged",
                    here,
                )
        pos = ctx.source.value_pos(here)
        where = str(pos) if pos is not None else format_path(here)
        steps = steps_of.get(stage, ()) if stage is not None else ()
        if stage is not None and stage in ctx.repeats:
            # Judged on the pooled summary; the repetitions' requests are held to it too.
            steps = tuple(repetition_id(stage, k) for k in range(1, ctx.repeats[stage] + 1))
        specs.append(
            SlaSpec(
                parse_sla(entry.assert_),
                provider,
                stage,
                where,
                steps,
                window_s=entry.window,
                allow=entry.allow or 0,
                stop_on_fail=entry.stop_on_fail,
            )
        )
    return tuple(specs)


def _exports(scenario: Scenario) -> tuple[ExportSpec, ...]:
    specs = []
    for i, text in enumerate(scenario.export):
        target = parse_target(text)  # the loader has checked it
        pos = scenario.source_map.value_pos(("export", i))
        where = str(pos) if pos is not None else f"export[{i}]"
        specs.append(ExportSpec(target.kind, Secret(target.dest, source=target.masked), where))
    return tuple(specs)


def _regression(scenario: Scenario) -> RegressionSpec | None:
    block = scenario.regression
    if block is None:
        return None
    pos = scenario.source_map.value_pos(("regression",))
    baseline = block.baseline
    # Like prompt files: relative to the scenario, wherever lens is run from.
    here = (Path(scenario.source_map.file).parent if scenario.source_map.file else Path()).resolve()
    if baseline is not None and not baseline.startswith(GIT_BASELINE_PREFIX):
        baseline = str(here / baseline)
    return RegressionSpec(
        baseline=baseline,
        base_dir=str(here),
        # The loader has parsed each one already.
        thresholds=tuple((k, parse_threshold(k, v)) for k, v in block.thresholds.items()),
        where=str(pos) if pos is not None else "regression",
    )


def _retry_policy(retries: Retries | None) -> RetryPolicy | None:
    if retries is None or retries.max == 0:
        return None
    return RetryPolicy(
        max_retries=retries.max,
        on=frozenset(retries.on),
        backoff_s=retries.backoff,
        max_wait_s=retries.max_wait,
    )


# The provider types whose adapters merge body: into their requests (simulated: through the
# client adapter of its protocol).  Plugins' adapters may not.
BODY_TYPES = frozenset(
    {
        "openai",
        "openai-compatible",
        "azure-openai",
        "anthropic",
        "gemini",
        "openai-responses",
        "bedrock",
        "simulated",
    }
)


def _bodies_not_sent(
    stages: Sequence[StagePlan],
    providers: Mapping[str, ProviderSpec],
    prompts: Mapping[str, PromptSpec],
) -> list[str]:
    """A body: that would reach a provider whose adapter does not send one: say so."""
    found = []
    for unit in stages:
        spec = providers[unit.provider]
        if spec.type in BODY_TYPES:
            continue
        if unit.body or any(prompts[pid].body for pid in set(unit.prompts)):
            found.append(
                f"stage {unit.stage!r} has body: fields for provider {unit.provider!r}, but "
                f"{spec.type} requests do not take them yet: they are not sent"
            )
    return list(dict.fromkeys(found))


# The provider types whose adapters keep a reply's text for a conversation's next turn
# (carry: responses): the OpenAI Chat decoder's.
REPLY_TEXT_TYPES = frozenset({"openai", "openai-compatible"})


def _keeps_reply_text(spec: ProviderSpec) -> bool:
    if isinstance(spec.settings, SimSettings):
        return spec.settings.protocol == "openai"
    return spec.type in REPLY_TEXT_TYPES


def _conversations(
    scenario: Scenario,
    stages: Sequence[StagePlan],
    providers: Mapping[str, ProviderSpec],
    prompts: Mapping[str, PromptSpec],
    ctx: _Context,
) -> list[str]:
    """Stages that send conversations: ``carry: responses`` needs a provider whose reply
    text lens reads (a problem otherwise), and ``requests:`` counts their sessions, while
    durations and cost bounds count one request each (a warning says so)."""
    warnings = []
    index = {prompt.id: i for i, prompt in enumerate(scenario.prompts)}
    for unit in stages:
        convs = {
            pid: conv
            for pid in dict.fromkeys(unit.prompts)
            if (conv := prompts[pid].conversation) is not None
        }
        if not convs:
            continue
        most = max(len(c.turns) for c in convs.values())
        warnings.append(
            f"stage {unit.stage!r} sends conversations (up to {most} turns): its requests "
            "and concurrency count sessions, each a request per turn; expected durations and "
            "cost bounds count one request a session"
        )
        spec = providers[unit.provider]
        if _keeps_reply_text(spec):
            continue
        for pid, conv in convs.items():
            if conv.carry != "responses":
                continue
            entry = pid.split("#", 1)[0]
            ctx.problem(
                f"conversation {entry!r} carries the model's replies (carry: responses), "
                f"but lens reads the reply text of openai-style providers only, not yet of "
                f"{unit.provider!r} ({spec.type}): use carry: reference",
                ("prompts", index.get(entry, 0)),
            )
            break
    return list(dict.fromkeys(warnings))


def _exact_without_limit(
    stages: Sequence[StagePlan],
    providers: Mapping[str, ProviderSpec],
    prompts: Mapping[str, PromptSpec],
) -> list[str]:
    """``output_tokens: exact`` needs a limit to be exact to: say where there is none."""
    found = []
    for unit in stages:
        settings = providers[unit.provider].settings
        if not (isinstance(settings, OpenAISettings) and settings.exact_output):
            continue
        if any(prompts[pid].token_limit(unit.max_tokens) is None for pid in set(unit.prompts)):
            found.append(
                f"provider {unit.provider!r} has output_tokens: exact, but stage {unit.stage!r} "
                "sends prompts with no max_tokens: those are not held to a length (set "
                "max_tokens in defaults, the stage or the prompt)"
            )
    return list(dict.fromkeys(found))


# --- the budget -----------------------------------------------------------------------------


def _budget_needs_bounds(
    stages: Sequence[StagePlan],
    providers: Mapping[str, ProviderSpec],
    prices: Mapping[str, ProviderPrice | None],
    prompts: Mapping[str, PromptSpec],
    ctx: _Context,
) -> None:
    """A budget is a hard bound (lens.run.budget) only if each request's cost has one.
    GPU-hour time always has (a request ends by its timeout), and so has a simulator's
    output; at token prices a real provider's request with no output limit has none: lens
    refuses such a budget rather than promise what it cannot keep."""
    for unit in stages:
        spec = providers[unit.provider]
        simulated = isinstance(spec.settings, SimSettings)
        if not isinstance(prices.get(unit.provider), ModelPrice) or simulated:
            continue
        for pid in dict.fromkeys(unit.prompts):
            if prompts[pid].token_limit(unit.max_tokens) is None:
                ctx.problem(
                    f"cannot be kept: stage {unit.stage!r} sends prompt {pid!r} "
                    f"to {unit.provider!r}, priced by the token, with no output limit, so "
                    "nothing bounds what one request costs; set max_tokens (in defaults, "
                    "the stage or the prompt), or remove the budget",
                    ("budget",),
                )
                return
